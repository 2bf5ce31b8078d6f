"""The PostgreSQL server the benchmarks use, and a fresh database for each benchmark, dropped afterwards.

The server is the tests' (``STORYLOOM_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``).
A benchmark gets a database of its own rather than a schema: ``pg_stat_activity`` names the database of every
connection, which is how the benchmarks see that their worker processes are connected and listening.
"""

from __future__ import annotations

import os
import secrets
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE = "STORYLOOM_TEST_POSTGRES_URL"


def server_url() -> str:
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def unavailable() -> str | None:
    """Why no benchmark can use the server, or None when it answers."""
    import psycopg

    url = server_url()
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"no PostgreSQL server answers at {_without_password(url)}: {first_line}"
    return None


def not_measured(name: str, unit: str, target: str, reason: str) -> dict:
    """The record of a benchmark that could not run: no value, and it does not hold."""
    return {"name": name, "value": None, "unit": unit, "target": target, "holds": False, "error": reason}


def database_url(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_database(purpose: str) -> Iterator[str]:
    """The URL of a new, empty database on the server; dropped (its connections ended) when the block ends."""
    import psycopg
    from psycopg import sql

    url = server_url()
    name = f"storyloom_bench_{purpose}_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def measured_in_fresh_database(
    purpose: str, records: Sequence[tuple[str, str, str]], measure: Callable[[str], list[dict]]
) -> list[dict]:
    """``measure(url)`` in a fresh database; if it fails, a record per ``(name, unit, target)`` saying how, so one
    broken measurement (a server that went away, a worker that never started) does not lose the others."""
    try:
        with fresh_database(purpose) as url:
            return measure(url)
    except Exception as exc:
        traceback.print_exc()
        reason = f"failed: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        return [not_measured(name, unit, target, reason) for name, unit, target in records]


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
