#!/usr/bin/env python3
"""Benchmark of the ORIGINAL swh.scheduler 0.16.0 (Python + PostgreSQL).

Measures the task life cycle of the generic task scheduler: create_tasks,
grab_ready_tasks, mass_schedule_task_runs, start_task_run and end_task_run,
either directly against PostgreSQL (``--backend postgresql``) or through the
original RPC server (``--backend remote``: ``swh scheduler rpc-serve --nodebug``
driven by ``swh.scheduler.api.client.RemoteScheduler``).

Each run uses a fresh database (``swh_sched_bench_<pid>``) initialised like
``swh db create scheduler`` + ``swh db init scheduler`` do, which is dropped at
the end, also on error or Ctrl-C.  One JSON object per phase is printed on
stdout; diagnostics go to stderr.

Must be run with the interpreter of a virtualenv holding swh.scheduler==0.16.0
(see run.sh next to this file).
"""

import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import psycopg2
import psycopg2.errors
from psycopg2.extensions import make_dsn, parse_dsn

TASK_TYPE = "load-bench-git"
BATCH = 1000


def log(*args):
    print("[bench_original]", *args, file=sys.stderr, flush=True)


def git_task_type(name, description):
    """A git loading task type as Software Heritage deploys it: 64 days (12 h to 64 days),
    backoff 2, 7 retries 2 h apart."""
    return {
        "type": name,
        "description": description,
        "backend_name": "swh.loader.git.tasks.UpdateGitRepository",
        "default_interval": datetime.timedelta(days=64),
        "min_interval": datetime.timedelta(hours=12),
        "max_interval": datetime.timedelta(days=64),
        "backoff_factor": 2,
        "num_retries": 7,
        "retry_delay": datetime.timedelta(hours=2),
    }


def is_deadlock(exc):
    """PostgreSQL's 'deadlock detected', raised directly by psycopg2 or relayed by
    the RPC server (500 with a serialised DeadlockDetected)."""
    if isinstance(exc, psycopg2.errors.DeadlockDetected):
        return True
    return type(exc).__name__ == "RemoteException" and "DeadlockDetected" in repr(exc.args)


def utcnow():
    return datetime.datetime.now(tz=datetime.timezone.utc)


# ---------------------------------------------------------------- database


def admin_exec(base_dsn, sql):
    """Run one statement in autocommit mode on the 'postgres' database."""
    params = parse_dsn(base_dsn)
    params["dbname"] = "postgres"
    conn = psycopg2.connect(make_dsn(**params))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_database(base_dsn, dbname):
    """Create and initialise the database the way swh.core's CLI does it
    (`swh db create scheduler` then `swh db init scheduler`): CREATE DATABASE,
    the *-superuser-* SQL files, then the other SQL files of the package
    (swh/scheduler/sql/*.sql) in file-name order, with psql ON_ERROR_STOP=1."""
    from swh.core.cli.db import (
        create_database_for_package,
        populate_database_for_package,
    )

    params = parse_dsn(base_dsn)
    params["dbname"] = dbname
    dsn = make_dsn(**params)
    create_database_for_package("scheduler", dsn)
    initialized, version, _flavor = populate_database_for_package("scheduler", dsn)
    assert initialized, "database was not freshly initialised"
    log(f"database {dbname} initialised, schema version {version}")
    return dsn


def drop_database(base_dsn, dbname):
    try:
        admin_exec(base_dsn, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        log(f"database {dbname} dropped")
    except Exception as exc:  # never hide the original error
        log(f"could not drop database {dbname}: {exc!r}")


# ---------------------------------------------------------------- RPC server


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcServer:
    """The original RPC server, in its own process group."""

    def __init__(self, dsn, kind="rpc-serve", workers=4, min_pool_conns=None):
        self.dsn = dsn
        self.min_pool_conns = min_pool_conns
        self.kind = kind
        self.workers = workers
        self.proc = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmpdir = tempfile.mkdtemp(prefix="swh-bench-rpc-")
        self.logpath = os.path.join(self.tmpdir, "server.log")

    def start(self):
        bindir = os.path.dirname(sys.executable)
        env = dict(os.environ)
        # Same as `swh scheduler --database DSN`, unless the pool is tuned.
        sched_cfg = {"cls": "local", "db": self.dsn}
        if self.min_pool_conns is not None:
            sched_cfg["min_pool_conns"] = self.min_pool_conns
            sched_cfg["max_pool_conns"] = max(10, self.min_pool_conns)
        cfg = os.path.join(self.tmpdir, "scheduler.yml")
        with open(cfg, "w") as f:
            json.dump({"scheduler": sched_cfg}, f)  # JSON is valid YAML
        if self.kind == "rpc-serve":
            # Flask/werkzeug development server (threaded), as started by
            # `swh scheduler rpc-serve`; upstream crashes without --nodebug.
            cmd = [
                os.path.join(bindir, "swh"),
                "scheduler",
                "--config-file",
                cfg,
                "rpc-serve",
                "--nodebug",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        elif self.kind == "gunicorn":
            # The WSGI app of the original, as deployed in production.
            env["SWH_CONFIG_FILENAME"] = cfg
            cmd = [
                os.path.join(bindir, "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
                "swh.scheduler.api.server:make_app_from_configfile()",
            ]
        else:
            raise ValueError(self.kind)
        log(f"starting RPC server: {' '.join(cmd)}")
        self.logfile = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group, killed as a whole
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"RPC server exited with {self.proc.returncode}:\n" + self.tail()
                )
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200 and b"scheduler RPC server" in resp.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("RPC server did not start:\n" + self.tail())
            time.sleep(0.2)
        log(f"RPC server ({self.kind}) ready at {self.url} (pid {self.proc.pid})")

    def tail(self, n=30):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            except ProcessLookupError:
                pass
            log("RPC server stopped")
        if self.proc is not None:
            self.logfile.close()
        try:
            for name in os.listdir(self.tmpdir):
                os.unlink(os.path.join(self.tmpdir, name))
            os.rmdir(self.tmpdir)
        except OSError:
            pass


# ---------------------------------------------------------------- benchmark


class Bench:
    def __init__(self, args, make_scheduler, dsn):
        self.args = args
        self.make_scheduler = make_scheduler
        self.dsn = dsn
        self.n = args.tasks
        self.k = args.concurrency

    def analyze(self):
        """--analyze: refresh the planner statistics of the whole database, as
        autovacuum does on a long-lived database.  Returns the time it took, which
        is excluded from the phase timings."""
        if not self.args.analyze:
            return 0.0
        t0 = time.perf_counter()
        conn = psycopg2.connect(self.dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
        finally:
            conn.close()
        return time.perf_counter() - t0

    def emit(self, phase, count, seconds, concurrency, **extra):
        rec = {
            "phase": phase,
            "tasks": count,
            "seconds": round(seconds, 3),
            "per_s": round(count / seconds, 1) if seconds > 0 else None,
            "concurrency": concurrency,
            "backend": self.args.backend,
        }
        if self.args.analyze:
            rec["analyze"] = True
        if self.args.backend == "remote":
            rec["server"] = self.args.server
            if self.args.server == "gunicorn":
                rec["server_workers"] = self.args.server_workers
            if self.args.server_min_pool_conns is not None:
                rec["server_min_pool_conns"] = self.args.server_min_pool_conns
        rec.update(extra)
        print(json.dumps(rec), flush=True)
        log(f"{phase} done; load average {os.getloadavg()}")

    def run_threads(self, target, chunks):
        """Run target(scheduler, chunk) in one thread per chunk, each thread
        with its own scheduler instance (created before the clock starts)."""
        scheds = [self.make_scheduler() for _ in chunks]
        results = [None] * len(chunks)
        errors = []
        barrier = threading.Barrier(len(chunks) + 1)

        def worker(i):
            try:
                barrier.wait()
                results[i] = target(scheds[i], chunks[i])
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True)
            for i in range(len(chunks))
        ]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return results, elapsed

    def run(self):
        n, k = self.n, self.k
        sched = self.make_scheduler()

        sched.create_task_type(git_task_type(TASK_TYPE, "Benchmark git loading"))
        assert sched.get_task_type(TASK_TYPE) is not None

        # -- create: batches of BATCH, shaped like swh.scheduler.simulator's tasks
        next_run = utcnow() - datetime.timedelta(days=1)
        tasks = [
            {
                "type": TASK_TYPE,
                "arguments": {"args": [], "kwargs": {"url": "https://example.com/%06d.git" % i}},
                "next_run": next_run,
                "policy": "recurring",
            }
            for i in range(n)
        ]
        created = 0
        batch_times = []
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            tb = time.perf_counter()
            created += len(sched.create_tasks(tasks[i : i + BATCH]))
            batch_times.append(time.perf_counter() - tb)
            if i == 0:
                t0 += self.analyze()  # not timed
        elapsed = time.perf_counter() - t0
        q = max(1, len(batch_times) // 10)
        log(
            "create: mean batch time, first/last 10%% of batches: %.1f ms / %.1f ms"
            % (1000 * sum(batch_times[:q]) / q, 1000 * sum(batch_times[-q:]) / q)
        )
        if created != n:
            raise RuntimeError(f"create_tasks returned {created} tasks, expected {n}")
        self.emit("create", n, elapsed, 1)
        del tasks

        self.analyze()
        # -- grab: grab_ready_tasks(num_tasks=BATCH) until nothing is left.
        deadlocks = []

        def grab_loop(s, _chunk):
            got = []
            while True:
                try:
                    res = s.grab_ready_tasks(TASK_TYPE, num_tasks=BATCH)
                except Exception as exc:
                    # Concurrent grabs in 0.16 lock the same rows in no fixed
                    # order and can deadlock; PostgreSQL aborts one of them,
                    # which (like a real runner) just tries again.
                    if not is_deadlock(exc):
                        raise
                    deadlocks.append(1)
                    continue
                if not res:
                    return got
                got.extend(t["id"] for t in res)

        results, elapsed = self.run_threads(grab_loop, [None] * k)
        if k > 1:
            # A last sweep (timed too) in case a thread saw an empty answer early.
            t0 = time.perf_counter()
            results.append(grab_loop(sched, None))
            elapsed += time.perf_counter() - t0
        returned = sum(len(r) for r in results)
        task_ids = sorted({i for r in results for i in r})
        dup = returned - len(task_ids)
        if len(task_ids) != n:
            raise RuntimeError(f"grabbed {len(task_ids)} distinct tasks, expected {n}")
        if dup:
            # 0.16's swh_scheduler_grab_ready_tasks has no FOR UPDATE SKIP LOCKED
            # and no status re-check: concurrent grabs can hand out a task twice.
            log(f"grab: {dup} tasks were returned more than once (concurrent grabs)")
        extra = {"returned": returned}
        if deadlocks:
            log(f"grab: {len(deadlocks)} grab_ready_tasks calls failed with a deadlock and were retried")
            extra["deadlocks"] = len(deadlocks)
        self.emit("grab", n, elapsed, k, **extra)

        self.analyze()
        # -- schedule: mass_schedule_task_runs in batches, one run per task.
        runs = [
            {"task": tid, "backend_id": str(uuid.uuid4()), "scheduled": utcnow(), "metadata": {}}
            for tid in task_ids
        ]
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            sched.mass_schedule_task_runs(runs[i : i + BATCH])
        elapsed = time.perf_counter() - t0
        self.emit("schedule", n, elapsed, 1)
        backend_ids = [r["backend_id"] for r in runs]
        del runs

        chunks = [backend_ids[i::k] for i in range(k)]

        self.analyze()
        # -- start: one start_task_run per run.
        def start_loop(s, ids):
            for bid in ids:
                r = s.start_task_run(bid, metadata={"worker": "bench@host"})
                if r is None:
                    raise RuntimeError(f"start_task_run({bid}) matched no run")

        _, elapsed = self.run_threads(start_loop, chunks)
        self.emit("start", n, elapsed, k)

        self.analyze()
        # -- end: one end_task_run(status="eventful") per run (fires the trigger).
        def end_loop(s, ids):
            for bid in ids:
                r = s.end_task_run(bid, status="eventful")
                if r is None:
                    raise RuntimeError(f"end_task_run({bid}) matched no run")

        _, elapsed = self.run_threads(end_loop, chunks)
        self.emit("end", n, elapsed, k)


class OriginBench(Bench):
    """The origin-visit workload, the same as `swh-scheduler benchmark`'s origin phases: N
    listed origins of one lister (visit type git, last_update set), then the same again
    (relist_origins: a lister's next pass over an unchanged forge); half of them get visit
    stats with a snapshot and a visit before their last_update; then grab_next_visits
    ("git", 1000, policy, timestamp=now) ten times for each of the three policies; then
    update_metrics() five times (the median); then the size of the two tables and their indexes."""

    POLICIES = [
        "oldest_scheduled_first",
        "never_visited_oldest_update_first",
        "already_visited_order_by_lag",
    ]

    def run(self):
        from swh.scheduler.model import ListedOrigin, OriginVisitStats

        n = self.n
        sched = self.make_scheduler()
        lister = sched.get_or_create_lister(name="bench", instance_name="example")
        base = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        origins = [
            ListedOrigin(
                lister_id=lister.id,
                url="https://example.com/%07d.git" % i,
                visit_type="git",
                last_update=base + datetime.timedelta(seconds=i),
            )
            for i in range(n)
        ]
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            sched.record_listed_origins(origins[i : i + BATCH])
        self.emit("record_origins", n, time.perf_counter() - t0, 1)
        # the lister's next pass: the same origins, unchanged (last_seen moves)
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            sched.record_listed_origins(origins[i : i + BATCH])
        self.emit("relist_origins", n, time.perf_counter() - t0, 1)

        stats = [
            OriginVisitStats(
                url=o.url,
                visit_type="git",
                last_eventful=o.last_update - datetime.timedelta(days=1),
                last_uneventful=None,
                last_failed=None,
                last_notfound=None,
                last_snapshot=b"\x01" * 20,
            )
            for o in origins[::2]
        ]
        t0 = time.perf_counter()
        for i in range(0, len(stats), BATCH):
            sched.origin_visit_stats_upsert(stats[i : i + BATCH])
        self.emit("visit_stats_upsert", len(stats), time.perf_counter() - t0, 1)
        self.analyze()

        now = utcnow()
        times, returned = [], 0
        for policy in self.POLICIES:
            for _ in range(10):
                tc = time.perf_counter()
                got = sched.grab_next_visits("git", BATCH, policy=policy, timestamp=now)
                times.append(time.perf_counter() - tc)
                returned += len(got)
        total = sum(times)
        ordered = sorted(times)
        self.emit(
            "grab_next_visits", returned, total, 1,
            calls_per_s=round(len(times) / total, 2),
            p50_ms=round(1000 * ordered[len(ordered) // 2], 2),
            p99_ms=round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        )

        # five calls, the median (as swh-scheduler benchmark does)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            metrics = sched.update_metrics()
            times.append(time.perf_counter() - t0)
        print(json.dumps({
            "phase": "update_metrics", "seconds": round(sorted(times)[2], 6), "calls": 5,
            "rows": len(metrics), "backend": self.args.backend,
        }), flush=True)

        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select pg_total_relation_size('listed_origins')"
                    " + pg_total_relation_size('origin_visit_stats')"
                )
                size = cur.fetchone()[0]
        finally:
            conn.close()
        print(json.dumps({
            "phase": "origin_memory", "origins": n,
            "bytes_per_origin": round(size / n), "backend": self.args.backend,
        }), flush=True)


def verify(dsn, n):
    """Sanity check of the final state (not timed)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select status, count(*) from task_run group by status")
        runs = dict(cur.fetchall())
        cur.execute(
            "select status, current_interval, count(*) from task group by 1, 2"
        )
        tasks = cur.fetchall()
    conn.close()
    log(f"final task_run statuses: {runs}")
    log(f"final task (status, current_interval, count): {tasks}")
    if runs != {"eventful": n}:
        raise RuntimeError(f"unexpected task_run statuses {runs}")
    # as shipped, eventful divides the interval by backoff_factor: 64 days -> 32 days
    if [(s, c) for s, _, c in tasks] != [("next_run_not_scheduled", n)]:
        raise RuntimeError(f"unexpected task statuses {tasks}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "remote"], default="postgresql")
    parser.add_argument(
        "--tasks", type=int, default=None,
        help="number of tasks (default 100000 for postgresql, 10000 for remote)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1,
        help="threads for grab, start and end (each with its own scheduler instance)",
    )
    parser.add_argument(
        "--server", choices=["rpc-serve", "gunicorn"], default="rpc-serve",
        help="remote only: `swh scheduler rpc-serve --nodebug` (default, the CLI's "
        "threaded werkzeug server) or gunicorn sync workers on the original WSGI app",
    )
    parser.add_argument(
        "--server-workers", type=int, default=4, help="gunicorn workers (default 4)"
    )
    parser.add_argument(
        "--server-min-pool-conns", type=int, default=None,
        help="remote only: min_pool_conns of the server's SchedulerBackend (default: "
        "not set, i.e. the original's default of 1, which makes psycopg2's pool close "
        "and reopen a PostgreSQL connection for every overlapping request)",
    )
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres"),
        help="libpq DSN of the server, without dbname "
        "(default: $BENCH_PG_DSN or 'host=127.0.0.1 port=5432 user=postgres')",
    )
    parser.add_argument(
        "--analyze", action="store_true",
        help="run ANALYZE (untimed) after the first create batch and before each later "
        "phase, so that the planner has statistics as on a long-lived database. By "
        "default the fresh database is usually never analysed during the run, which "
        "keeps create_tasks on its fast index plan (see README)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--workload", choices=["tasks", "origins"], default="tasks",
        help="tasks: the task life cycle (default); origins: the origin-visit scheduler "
        "(record_listed_origins, visit stats, grab_next_visits, update_metrics)",
    )
    args = parser.parse_args()
    if args.tasks is None:
        args.tasks = 100000 if args.backend == "postgresql" else 10000
    if args.tasks <= 0 or args.concurrency <= 0:
        parser.error("--tasks and --concurrency must be positive")

    import swh.scheduler
    from swh.scheduler import get_scheduler

    try:
        from importlib.metadata import version

        log(f"swh.scheduler {version('swh.scheduler')} from {os.path.dirname(swh.scheduler.__file__)}")
    except Exception:
        pass

    # SIGTERM -> SystemExit, so that the finally clause below still cleans up.
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)

    dbname = f"swh_sched_bench_{os.getpid()}"
    server = None
    try:
        # inside the try: even a half-created database gets dropped
        dsn = create_database(args.pg, dbname)
        if args.backend == "postgresql":
            # 0.16 names the PostgreSQL backend "local" (later releases: "postgresql").
            def make_scheduler():
                return get_scheduler("local", db=dsn)

        else:
            server = RpcServer(dsn, args.server, args.server_workers, args.server_min_pool_conns)
            server.start()

            def make_scheduler():
                return get_scheduler("remote", url=server.url)

        log(f"backend={args.backend} tasks={args.tasks} concurrency={args.concurrency}")
        if args.workload == "origins":
            OriginBench(args, make_scheduler, dsn).run()
        else:
            Bench(args, make_scheduler, dsn).run()
            verify(dsn, args.tasks)
    finally:
        if server is not None:
            server.stop()
        if not args.keep_db:
            drop_database(args.pg, dbname)


if __name__ == "__main__":
    main()
