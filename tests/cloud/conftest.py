"""Fixtures for the cloud tests: `store` is a fresh, empty ledger store on each engine the
machine has, so every test that takes it runs against SQLite and PostgreSQL alike.

PostgreSQL: the server at $PHARMASYNC_TEST_PG (default below); the session gets a database
of its own, dropped at its end, and each test a schema of its own in it (the store's DSN
sets search_path), so tests never see each other's rows. Where the server is not reachable
the postgres tests skip, and fail under CI.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import asyncpg
import pytest

from cloud.storage.store import Store
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.contracts.world import REGULATOR
from tests.conftest import need_or_skip

ENGINES = ["sqlite", "postgres"]
PG_SERVER = os.environ.get("PHARMASYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def _with(dsn: str, *, database: str | None = None, **settings: str) -> str:
    """Return `dsn` naming another database and/or adding server settings (asyncpg passes
    unknown query parameters to the server, e.g. search_path)."""
    url = urlsplit(dsn)
    if database is not None:
        url = url._replace(path="/" + database)
    if settings:
        url = url._replace(query="&".join(q for q in (url.query, urlencode(settings)) if q))
    return url.geturl()


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a thread and loop of its own: the session fixture is set up from
    inside the running loop of the first test that needs it, where asyncio.run() refuses."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The DSN of a database created for this test session and dropped at its end."""
    name = f"pharmasync_test_{os.getpid()}_{secrets.token_hex(4)}"
    server = urlsplit(PG_SERVER)
    try:
        _run_apart(_execute(PG_SERVER, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        need_or_skip(
            f"PostgreSQL not usable at {server.hostname}:{server.port or 5432} as "
            f"{server.username}: {type(e).__name__}: {e} (set PHARMASYNC_TEST_PG to a "
            "postgresql:// URL of a role that may create databases)"
        )
    try:
        yield _with(PG_SERVER, database=name)
    finally:
        # FORCE: a test that failed before closing its pool must not keep the database.
        _run_apart(_execute(PG_SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fresh_schema(database: str) -> str:
    """Create an empty schema in `database`; return the DSN that works in it."""
    schema = f"test_{secrets.token_hex(6)}"
    await _execute(database, f"CREATE SCHEMA {schema}")
    return _with(database, search_path=schema)


@pytest.fixture
async def postgres_dsn(postgres_database: str) -> str:
    """The DSN of an empty schema of its own, for tests that open several PostgreSQL stores
    on one ledger (workers sharing a database)."""
    return await fresh_schema(postgres_database)


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty ledger store on each engine."""
    s: Store
    if request.param == "postgres":
        # Asked for here, not as an argument: sqlite runs must not need a server.
        database: str = request.getfixturevalue("postgres_database")
        s = await Store.postgres(await fresh_schema(database))
    else:
        s = Store.sqlite(tmp_path / "ledger.sqlite")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=ENGINES)
async def database(request: pytest.FixtureRequest) -> str | None:
    """CloudSettings.database for each engine: None (SQLite in the data directory) or the
    DSN of an empty PostgreSQL schema."""
    if request.param == "postgres":
        return await fresh_schema(request.getfixturevalue("postgres_database"))
    return None


@pytest.fixture
async def regulated(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    """A cloud app served on a local port whose regulator is the contract tests' REGULATOR
    (tests/cloud/contracts/world.py), on each engine."""
    server, session = await start(
        settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    )
    try:
        yield Cloud(server, session)
    finally:
        await session.close()
        await server.close()
