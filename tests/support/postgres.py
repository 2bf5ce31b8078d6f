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
    """``url`` with every connection's ``search_path`` set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; the schema is dropped afterwards."""
    import psycopg

    url = require_server()
    schema = f"storyloom_test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query_start IS NOT NULL AND application_name = 'storyloom' "
                "AND state = 'idle in transaction'"
            )
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
