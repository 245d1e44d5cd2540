"""The original's own tests (swh.scheduler 0.16.0's TestScheduler and its journal client's
tests, unmodified, imported from the installed package as its test_api_client.py does) run
through its RemoteScheduler against this scheduler's RPC server: the journal client
(`swh scheduler journal-client`, which only calls visit_stats/get and visit_stats/upsert)
gives the stats the original's tests expect of it on PostgreSQL.

SWH_SCHEDULER_URL is the server's URL and SWH_SCHEDULER_REDIS the host:port of its Redis,
emptied before each test (the original gives each test a fresh database).
"""

import os
import socket

import pytest

from swh.scheduler.api.client import RemoteScheduler
from swh.scheduler.tests.conftest import (  # noqa: F401 (fixtures)
    listed_origins,
    listed_origins_by_type,
    stored_lister,
    visit_types,
)
from swh.scheduler.tests.test_scheduler import TestScheduler  # noqa: F401
from swh.scheduler.tests.test_journal_client import *  # noqa: F401,F403


def flushdb():
    host, port = os.environ["SWH_SCHEDULER_REDIS"].rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"*1\r\n$7\r\nFLUSHDB\r\n")
        assert s.recv(64).startswith(b"+OK"), "FLUSHDB failed"


@pytest.fixture
def swh_scheduler():
    flushdb()
    return RemoteScheduler(url=os.environ["SWH_SCHEDULER_URL"])
