"""A fresh PostgreSQL schema per test, on the server named by ``STORYLOOM_TEST_POSTGRES_URL``.

Where no server answers, tests that need one skip with the reason; with ``STORYLOOM_REQUIRE_POSTGRES=1`` (set by
CI) that skip is a failure instead, so the PostgreSQL backend is always tested where it must be.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("STORYLOOM_TEST_POSTGRES_URL") or DEFAULT_URL


def require_server() -> str:
    """The server's URL, or skip (fail when PostgreSQL is required) naming why it cannot be used."""
    import psycopg

    url = server_url()
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server answers at {url}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("STORYLOOM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (STORYLOOM_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema``, and named after it (``application_name``),
    so a test can find its own connections among those of other test runs on the same server."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}&application_name={schema}"


def application_name(url: str) -> str:
    """The name the connections of ``url`` carry (see :func:`with_schema`)."""
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url).get("application_name") or "storyloom")


def drop_connections(url: str) -> int:
    """Cut every connection made with ``url`` (what a PostgreSQL restart does to them); returns how many."""
    import psycopg

    with psycopg.connect(server_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name(url),),
        ).fetchall()
    return len(rows)


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; the schema is dropped afterwards."""
    import psycopg

    url = require_server()
    schema = f"storyloom_test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    scoped = with_schema(url, schema)
    try:
        yield scoped
    finally:
        drop_connections(scoped)  # processes a test left behind must not hold locks on the schema
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
