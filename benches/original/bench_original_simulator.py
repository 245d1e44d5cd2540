#!/usr/bin/env python3
"""Benchmark of the ORIGINAL swh.scheduler 0.16.0 simulator (SimPy + PostgreSQL).

Runs the original ``swh.scheduler.simulator`` the way ``swh scheduler simulator
fill-test-data`` followed by ``swh scheduler simulator run`` do, on a fresh
PostgreSQL database (``swh_sched_bench_<pid>``, created like bench_original.py
does and dropped at the end, also on error, Ctrl-C or SIGTERM):

* creates the ``load-git`` task type (``fill_test_data`` creates ``load-git``
  tasks, and the task_scheduler grabs them);
* times ``fill_test_data(scheduler, N)``;
* times ``run(scheduler, scheduler_type, policy, runtime)`` (48 simulated git
  workers, as shipped).

Prints ONE JSON line on stdout; everything else (including the simulator's own
"total simulated time" line) goes to stderr.

Must be run with the interpreter of a virtualenv holding
swh.scheduler[simulator]==0.16.0 (see run.sh next to this file:
``run.sh --simulator ...``).
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time

from bench_original import create_database, drop_database, git_task_type

TASK_TYPE = "load-git"


def log(*args):
    print("[bench_original_simulator]", *args, file=sys.stderr, flush=True)


def create_task_type(scheduler):
    scheduler.create_task_type(git_task_type(TASK_TYPE, "Update a git repository"))
    assert scheduler.get_task_type(TASK_TYPE) is not None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--origins", type=int, default=100000,
        help="number of listed origins (and load-git tasks) created by fill_test_data "
        "(default 100000)",
    )
    parser.add_argument(
        "--runtime", type=float, default=604800,
        help="simulated runtime in seconds (default 604800, one week)",
    )
    parser.add_argument(
        "--scheduler", choices=["origin_scheduler", "task_scheduler"],
        default="origin_scheduler",
    )
    parser.add_argument(
        "--policy", default="oldest_scheduled_first",
        help="origin_scheduler's policy (default oldest_scheduled_first); ignored "
        "(None) for task_scheduler, as in the original CLI",
    )
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres"),
        help="libpq DSN of the server, without dbname "
        "(default: $BENCH_PG_DSN or 'host=127.0.0.1 port=5432 user=postgres')",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = parser.parse_args()
    if args.origins <= 0 or args.runtime <= 0:
        parser.error("--origins and --runtime must be positive")
    # as `swh scheduler simulator run` does
    policy = args.policy if args.scheduler == "origin_scheduler" else None
    runtime = int(args.runtime) if args.runtime == int(args.runtime) else args.runtime

    # Progress on stderr: the simulator logs "time:<simulated> visits:<n>" at INFO
    # once per simulated hour (update_metrics_process).
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("swh.scheduler.simulator").setLevel(logging.INFO)

    import swh.scheduler
    from swh.scheduler import get_scheduler
    from swh.scheduler.simulator import fill_test_data, run

    try:
        from importlib.metadata import version

        log(
            f"swh.scheduler {version('swh.scheduler')}, simpy {version('simpy')}, "
            f"plotille {version('plotille')} from {os.path.dirname(swh.scheduler.__file__)}"
        )
    except Exception:
        pass

    # The original run() ends with `finally: ... return env.report`, which swallows
    # every exception raised during the simulation (Ctrl-C, SIGTERM, a database
    # error) and returns a partial report. Record them, so that no figure is printed
    # for a partial run and the error is re-raised (and the database dropped).
    errors = []
    signals = []

    # SIGTERM -> SystemExit, Ctrl-C -> KeyboardInterrupt, so that the finally
    # clause below still cleans up.
    def on_signal(signum, frame):
        signals.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    import swh.scheduler.simulator as simulator

    class Environment(simulator.Environment):
        """The original Environment; only records what its run() raises."""

        def run(self, until=None):
            try:
                return super().run(until)
            except BaseException as exc:
                errors.append(exc)
                raise

    simulator.Environment = Environment  # looked up by simulator.run()

    dbname = f"swh_sched_bench_{os.getpid()}"
    try:
        # inside the try: even a half-created database gets dropped
        dsn = create_database(args.pg, dbname)
        # 0.16 names the PostgreSQL backend "local" (later releases: "postgresql").
        scheduler = get_scheduler("local", db=dsn)
        create_task_type(scheduler)

        log(
            f"scheduler={args.scheduler} policy={policy} origins={args.origins} "
            f"runtime={runtime}"
        )
        t0 = time.monotonic()
        fill_test_data(scheduler, num_origins=args.origins)
        fill_s = time.monotonic() - t0
        log(f"fill_test_data: {fill_s:.2f} s")

        t0 = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            report = run(
                scheduler=scheduler,
                scheduler_type=args.scheduler,
                policy=policy,
                runtime=runtime,
            )
        wall_s = time.monotonic() - t0
        if errors:
            raise errors[0]
        if signals:
            raise KeyboardInterrupt if signals[0] == signal.SIGINT else SystemExit(128 + signals[0])
        # update_metrics_process records metrics at the start time, run() at the end
        simulated = (
            report.scheduler_metrics[-1][0] - report.scheduler_metrics[0][0]
        ).total_seconds()
        if abs(simulated - runtime) > 1e-3:
            raise RuntimeError(f"simulation stopped at {simulated} s, expected {runtime} s")
        log("report:\n" + report.format(with_plots=False))

        total = report.total_visits
        print(json.dumps({
            "implementation": "original",
            "scheduler": args.scheduler,
            "policy": policy,
            "origins": args.origins,
            "simulated_s": runtime,
            "fill_s": round(fill_s, 3),
            "wall_s": round(wall_s, 3),
            "total_visits": total,
            "eventful": len(report.visit_runtimes.get(("full", True), [])),
            "uneventful": report.uneventful_visits,
            "visits_per_s": round(total / wall_s, 1) if wall_s > 0 else None,
        }), flush=True)
    finally:
        if not args.keep_db:
            drop_database(args.pg, dbname)


if __name__ == "__main__":
    main()
