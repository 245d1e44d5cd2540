"""An example Celery worker for swh-scheduler.

Run it with a stock Celery 5 (``pip install 'celery[redis]'``)::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
        celery -A worker worker -Q swh.example.dumb -E -l info

``-E`` makes the worker send task events, which the scheduler's listener turns into task runs.
(The listener can also turn task events on for workers started without it.)

Tasks:

- ``swh.example.dumb(status="eventful", sleep=0)``: returns ``{"status": status}``; the
  scheduler reschedules an eventful recurring task sooner and an uneventful one later.
- ``swh.example.echo(*args, **kwargs)``: returns ``{"status": "eventful", "args": args,
  "kwargs": kwargs}``.
- ``swh.example.fail(message="boom")``: raises, so its run ends ``failed``.
- ``swh.example.visit(url, status="eventful", snapshot_id=None, **kwargs)``: a loader's
  result shape, ``{"status": status, "snapshot_id": snapshot_id}``; raises when status is
  ``raise`` (for the visit runner: its messages carry the listing's extra arguments).

Every task uses ``SWHTask``, which, like the original's ``swh.scheduler.task.SWHTask``,
emits a ``task-result`` event carrying the return value.
"""

import os
import time

from celery import Celery, Task


class SWHTask(Task):
    """Sends the original's ``task-result`` event with the task's return value on success."""

    def on_success(self, retval, task_id, args, kwargs):
        self.send_event("task-result", result=retval)


app = Celery(
    "swh_example_worker",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
    task_cls=SWHTask,
)
# The original's Celery settings (swh.scheduler.celery_backend.config).
app.conf.update(
    enable_utc=True,
    timezone="UTC",
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_acks_late=False,
    task_track_started=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="swh.example.dumb")
def dumb(status="eventful", sleep=0):
    if sleep:
        time.sleep(sleep)
    return {"status": status}


@app.task(name="swh.example.echo")
def echo(*args, **kwargs):
    return {"status": "eventful", "args": list(args), "kwargs": kwargs}


@app.task(name="swh.example.fail")
def fail(message="boom"):
    raise ValueError(message)


@app.task(name="swh.example.visit")
def visit(url, status="eventful", snapshot_id=None, **kwargs):
    if status == "raise":
        raise RuntimeError(f"cannot load {url}")
    return {"status": status, "snapshot_id": snapshot_id}
