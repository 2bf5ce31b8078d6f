"""The PostgreSQL benchmarks' own plumbing: a database of their own, dropped afterwards, and records that say what
went wrong instead of a crash when no server answers or a measurement fails."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from bench import bench_postgres
from bench.postgres import database_name, fresh_database, measured_in_fresh_database, server_url, with_schema
from tests.support.postgres import require_server

CLOSED = "postgresql://postgres@127.0.0.1:1/test"


def _databases_named(name: str) -> int:
    with psycopg.connect(server_url()) as connection:
        row = connection.execute("SELECT COUNT(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert row is not None
        return int(row[0])


def test_without_a_server_every_record_names_it_and_none_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLOOM_TEST_POSTGRES_URL", CLOSED)
    records = bench_postgres.run()
    assert [(r["name"], r["unit"], r["target"]) for r in records] == list(bench_postgres.RECORDS)
    for record in records:
        assert record["holds"] is False and record["value"] is None
        assert record["error"].startswith(f"no PostgreSQL server answers at {CLOSED}: ")


def test_a_fresh_database_is_empty_and_is_dropped_afterwards() -> None:
    require_server()
    with fresh_database("selftest") as url:
        name = database_name(url)
        assert name.startswith("storyloom_bench_selftest_")
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == (name,)
            assert connection.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        assert _databases_named(name) == 1
    assert _databases_named(name) == 0


def test_a_schema_url_sees_only_its_schema() -> None:
    require_server()
    schema = f"bench_{secrets.token_hex(4)}"
    with fresh_database("selftest") as url:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        with psycopg.connect(with_schema(url, schema)) as connection:
            assert connection.execute("SELECT current_schema()").fetchone() == (schema,)


def test_a_failed_measurement_becomes_one_record_per_name_saying_how(capsys: pytest.CaptureFixture[str]) -> None:
    require_server()
    used: list[str] = []

    def measure(url: str) -> list[dict]:
        used.append(database_name(url))
        raise RuntimeError("the workers never started\nsecond line")

    records = measured_in_fresh_database("selftest", [("a_ms", "ms", "<= 1"), ("b_ratio", "ratio", ">= 2")], measure)
    assert records == [
        {"name": name, "value": None, "unit": unit, "target": target, "holds": False,
         "error": "failed: RuntimeError: the workers never started"}
        for name, unit, target in [("a_ms", "ms", "<= 1"), ("b_ratio", "ratio", ">= 2")]
    ]  # fmt: skip
    assert "RuntimeError" in capsys.readouterr().err  # the traceback, for whoever reads the run's log
    assert len(used) == 1 and _databases_named(used[0]) == 0
