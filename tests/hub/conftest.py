"""Fixtures for the hub's integration tests: a private Mosquitto and real PostgreSQL.

Every PostgreSQL test gets its own schema (prefix unique to the session), dropped at the
end; every SQLite test its own file. The broker is private to the session, on a free port.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from checkpost.hub.broker import PrivateBroker
from checkpost.hub.store import Store, open_store

from checkpost.issuer import TestIssuer

PG = os.environ.get("CHECKPOST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SESSION = uuid.uuid4().hex[:8]


def _pg_up() -> bool:
    try:
        with psycopg.connect(PG, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    if not _pg_up():
        # The machine's server may be stopped; start it rather than skip.
        versions = sorted(os.listdir("/etc/postgresql"))
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
        )
        for _ in range(50):
            if _pg_up():
                break
            time.sleep(0.2)
    assert _pg_up(), f"PostgreSQL not reachable at {PG}"
    yield PG
    with psycopg.connect(PG, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"t_{SESSION}_%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker() as b:
        yield b


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    return TestIssuer.create(tmp_path_factory.mktemp("issuer"))


def new_db_url(kind: str, tmp: Path, pg: str | None) -> str:
    if kind == "sqlite":
        return str(tmp / f"hub-{uuid.uuid4().hex[:6]}.db")
    assert pg is not None
    return f"{pg}?schema=t_{SESSION}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    return new_db_url(request.param, tmp_path, pg)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def arun(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))
