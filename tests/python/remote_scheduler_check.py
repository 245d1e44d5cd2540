"""Drives a scheduler RPC server with the original's unmodified Python client
(swh.scheduler 0.16.0, swh.core 0.14.3) and checks every answer.

Usage: python remote_scheduler_check.py URL {msgpack|json} PREFIX
PREFIX keeps the task types of separate runs apart.
"""

import datetime
import sys

from swh.core.api.serializers import json_dumps
from swh.scheduler.api.client import RemoteScheduler
from swh.scheduler.exc import SchedulerException

url, encoding, prefix = sys.argv[1:4]
UTC = datetime.timezone.utc


class JsonRemoteScheduler(RemoteScheduler):
    """The same client, speaking JSON both ways (the server accepts both, as the original)."""

    def post(self, endpoint, data, **opts):
        response = self.raw_verb(
            "post",
            endpoint,
            data=json_dumps(data, extra_encoders=self.extra_type_encoders),
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        assert response.headers["content-type"].startswith("application/json") or response.status_code != 200
        return self._decode_response(response)


s = (JsonRemoteScheduler if encoding == "json" else RemoteScheduler)(url=url)
t0 = datetime.datetime(2026, 7, 20, 10, 0, 0, 123456, tzinfo=UTC)
git, ping = f"{prefix}-load-git", f"{prefix}-ping"

# task types, with timedeltas that need every field
git_type = {
    "type": git,
    "description": "Update a git repository",
    "backend_name": "swh.loader.git.tasks.UpdateGitRepository",
    "default_interval": datetime.timedelta(days=64, seconds=5, microseconds=7),
    "min_interval": datetime.timedelta(hours=12),
    "max_interval": datetime.timedelta(days=64, seconds=5, microseconds=7),
    "backoff_factor": 2.0,
    "max_queue_length": 5000,
    "num_retries": 7,
    "retry_delay": datetime.timedelta(hours=2),
}
ping_type = {
    "type": ping,
    "description": "Ping",
    "backend_name": "swh.scheduler.tests.tasks.ping",
    "default_interval": datetime.timedelta(days=1),
    "min_interval": datetime.timedelta(days=1),
    "max_interval": datetime.timedelta(days=1),
    "backoff_factor": 1,
}
assert s.create_task_type(git_type) is None
s.create_task_type(ping_type)
s.create_task_type({**git_type, "description": "changed"})  # insert-or-ignore
assert s.get_task_type(git) == git_type, s.get_task_type(git)
got = s.get_task_type(ping)
assert got["max_queue_length"] == 1000 and got["retry_delay"] is None, got
assert s.get_task_type(f"{prefix}-nope") is None
names = {t["type"] for t in s.get_task_types()}
assert {git, ping} <= names, names

# tasks
tasks = [
    {"type": git, "arguments": {"args": [], "kwargs": {"url": f"https://example.com/{i}.git"}},
     "next_run": t0 + datetime.timedelta(minutes=i)}
    for i in range(5)
]
tasks.append({"type": ping, "arguments": {"args": [1, "two", {"3": [4.5, None, True]}], "kwargs": {}},
              "next_run": t0, "policy": "oneshot", "retries_left": 1})
tasks.append({"type": ping, "arguments": {"args": ["urgent"], "kwargs": {}},
              "next_run": t0, "priority": "high", "policy": "oneshot"})
created = s.create_tasks(tasks)
assert len(created) == 7, created
for task, row in zip(tasks, created):
    assert list(row) == ["type", "arguments", "next_run", "policy", "status", "retries_left",
                         "priority", "id", "current_interval"], list(row)
    assert row["arguments"] == task["arguments"], row
    assert row["next_run"] == task["next_run"] and row["next_run"].tzinfo is not None, row
    assert row["status"] == "next_run_not_scheduled"
assert created[0]["current_interval"] == git_type["default_interval"]
assert created[0]["retries_left"] == 7 and created[5]["retries_left"] == 1
assert created[6]["priority"] == "high" and created[0]["priority"] is None
assert s.create_tasks(tasks[:1]) == created[:1], "dedup returns the same task"
ids = [row["id"] for row in created]
assert s.get_tasks(ids) == created

# search
found = s.search_tasks(task_type=git)
assert [t["id"] for t in found] == ids[:5], found
assert list(found[0]) == ["id", "type", "arguments", "next_run", "current_interval", "status",
                          "policy", "retries_left", "priority"], list(found[0])
assert [t["id"] for t in s.search_tasks(task_id=ids[1])] == [ids[1]]
assert [t["id"] for t in s.search_tasks(task_type=[git, ping], priority="high")] == [ids[6]]
assert len(s.search_tasks(task_type=git, limit=2)) == 2
window = s.search_tasks(task_type=git, after=t0 + datetime.timedelta(minutes=1),
                        before=t0 + datetime.timedelta(minutes=2))
assert [t["id"] for t in window] == ids[1:3], window

# ready tasks
peek = s.peek_ready_tasks(git, timestamp=t0 + datetime.timedelta(minutes=2), num_tasks=10)
assert [t["id"] for t in peek] == ids[:3], peek
assert [t["id"] for t in s.peek_ready_tasks(git, timestamp=t0, num_tasks=None)] == ids[:1]
grabbed = s.grab_ready_tasks(git, timestamp=t0 + datetime.timedelta(minutes=1), num_tasks=1)
assert [t["id"] for t in grabbed] == ids[:1] and grabbed[0]["status"] == "next_run_scheduled"
assert [t["id"] for t in s.peek_ready_priority_tasks(ping, timestamp=t0)] == [ids[6]]
assert [t["id"] for t in s.grab_ready_priority_tasks(ping, timestamp=t0, num_tasks=5)] == [ids[6]]
assert s.peek_ready_priority_tasks(ping, timestamp=t0) == []
assert s.grab_ready_tasks(f"{prefix}-nope") == []

# status changes
s.disable_tasks([ids[4]])
assert s.get_tasks([ids[4]])[0]["status"] == "disabled"
s.set_status_tasks([ids[4]], status="next_run_not_scheduled", next_run=t0 + datetime.timedelta(days=3))
row = s.get_tasks([ids[4]])[0]
assert row["status"] == "next_run_not_scheduled" and row["next_run"] == t0 + datetime.timedelta(days=3)

# runs
run = s.schedule_task_run(ids[0], f"{prefix}-bid-0", metadata={"a": 1}, timestamp=t0)
assert list(run) == ["id", "task", "backend_id", "scheduled", "started", "ended", "metadata", "status"]
assert (run["task"], run["status"], run["scheduled"], run["metadata"]) == (ids[0], "scheduled", t0, {"a": 1}), run
assert s.mass_schedule_task_runs([
    {"task": ids[5], "backend_id": f"{prefix}-bid-5", "scheduled": t0, "metadata": {}},
    {"task": ids[1], "backend_id": f"{prefix}-bid-1", "scheduled": t0, "metadata": {}},
]) is None
t1, t2 = t0 + datetime.timedelta(seconds=1, microseconds=1), t0 + datetime.timedelta(seconds=9)
started = s.start_task_run(f"{prefix}-bid-0", metadata={"worker": "w1@vm"}, timestamp=t1)
assert started["status"] == "started" and started["started"] == t1, started
assert started["metadata"] == {"a": 1, "worker": "w1@vm"}, started
ended = s.end_task_run(f"{prefix}-bid-0", status="eventful", metadata={"x": [1]}, timestamp=t2)
assert (ended["status"], ended["ended"]) == ("eventful", t2), ended
assert s.start_task_run(f"{prefix}-unknown") is None
assert s.end_task_run(f"{prefix}-unknown", status="failed") is None
after = s.get_tasks([ids[0]])[0]
assert after["current_interval"] == git_type["default_interval"] / 2, after
assert after["next_run"] == t2 + after["current_interval"], after
runs = s.get_task_runs([ids[0], ids[5], ids[1]])
assert sorted(r["backend_id"] for r in runs) == sorted(f"{prefix}-bid-{i}" for i in (0, 1, 5)), runs
assert len(s.get_task_runs([ids[0], ids[5], ids[1]], limit=2)) == 2
assert s.get_task_runs([]) == []

# archival: the oneshot task, completed
s.start_task_run(f"{prefix}-bid-5", timestamp=t1)
s.end_task_run(f"{prefix}-bid-5", status="uneventful", timestamp=t2)
assert s.get_tasks([ids[5]])[0]["status"] == "completed"
page = s.filter_task_to_archive("2026-07-19", "2026-07-21", limit=10)
mine = [t for t in page["tasks"] if t["type"] == ping and t["task_id"] == ids[5]]
assert len(mine) == 1, page
row = mine[0]
assert list(row) == ["task_id", "task_policy", "task_status", "task_run_id", "arguments", "type",
                     "backend_id", "metadata", "scheduled", "started", "ended", "task_run_status"], row
# msgpack keeps the int keys; JSON has string keys only (the original's JSON does the same)
args = {0: 1, 1: "two", 2: {"3": [4.5, None, True]}}
assert row["arguments"]["args"] == (args if encoding == "msgpack" else {str(k): v for k, v in args.items()}), row
assert row["arguments"]["kwargs"] == "{}" and row["task_run_status"] == "uneventful", row
s.delete_archived_tasks([{"task_id": ids[5], "task_run_id": row["task_run_id"]}])
assert s.get_tasks([ids[5]]) == []

# errors, raised as the original's exception classes
for call in (
    lambda: s.create_tasks([{"type": f"{prefix}-nope", "arguments": {"args": [], "kwargs": {}}, "next_run": t0}]),
    lambda: s.create_tasks([{"type": git, "arguments": {"args": "not a list", "kwargs": {}}, "next_run": t0}]),
    lambda: s.end_task_run(f"{prefix}-bid-1", status="exploded"),
    lambda: s.grab_next_visits("git", 1, policy="nope"),
):
    try:
        call()
    except SchedulerException as e:
        print("expected error:", e)
    else:
        raise AssertionError("no error")
try:
    s.create_tasks([{"type": git, "arguments": {"args": [], "kwargs": {}}, "next_run": datetime.datetime(2026, 1, 1)}])
except (SchedulerException, TypeError, ValueError) as e:  # the client may refuse it first
    print("expected error:", e)
else:
    raise AssertionError("naive datetime accepted")

print("OK", encoding)
