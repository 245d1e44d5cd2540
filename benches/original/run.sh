#!/usr/bin/env bash
# Benchmark of the ORIGINAL swh.scheduler 0.16.0 (Python/PostgreSQL).
# Idempotent: creates the virtualenv and installs the original only when missing,
# then runs bench_original.py with the arguments given, e.g.
#   benches/original/run.sh --backend postgresql --tasks 100000 --concurrency 1
#   benches/original/run.sh --backend remote --tasks 10000 --concurrency 4
# or, with --simulator as the first argument, bench_original_simulator.py (the
# original SimPy simulator) with the remaining arguments, e.g.
#   benches/original/run.sh --simulator --origins 100000 --runtime 86400 --scheduler origin_scheduler
# Environment: PYTHON (interpreter used to create the venv, default python3),
# VENV (default <repo>/target/venv-original), BENCH_PG_DSN (libpq DSN of the
# PostgreSQL server without dbname, default "host=127.0.0.1 port=5432 user=postgres").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$REPO/target/venv-original}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$HERE/constraints.txt"

installed() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/swh" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
assert version("swh.scheduler") == "0.16.0", version("swh.scheduler")
assert version("swh.core") == "0.14.3", version("swh.core")
import psycopg2, flask, requests, msgpack  # server, client and backend deps
import simpy, plotille  # the `simulator` extra
import swh.scheduler.backend, swh.scheduler.api.client, swh.scheduler.api.server
import swh.scheduler.simulator
PY
}

if ! installed; then
    echo "[run.sh] installing swh.scheduler 0.16.0 into $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # psycopg2 is built from source: needs pg_config (libpq-dev), gcc and python3-dev.
    "$VENV/bin/pip" install --disable-pip-version-check -q 'pip==24.0' 'setuptools==65.5.0'
    "$VENV/bin/pip" install --disable-pip-version-check -q -c "$CONSTRAINTS" \
        'swh.scheduler[simulator]==0.16.0' 'swh.core[http]==0.14.3'
    installed || { echo "[run.sh] installation check failed" >&2; exit 1; }
fi

command -v psql >/dev/null || { echo "[run.sh] psql not found (needed to load the schema)" >&2; exit 1; }

SCRIPT="$HERE/bench_original.py"
if [ "${1:-}" = "--simulator" ]; then
    shift
    SCRIPT="$HERE/bench_original_simulator.py"
fi
exec "$VENV/bin/python" "$SCRIPT" "$@"
