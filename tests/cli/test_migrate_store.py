"""``storyloom queue migrate-store SQLITE_PATH POSTGRES_URL`` through the real command-line entry point."""

from __future__ import annotations

from pathlib import Path

from storyloom.cli.main import main
from storyloom.cli.queue import url_without_password
from storyloom.queue import ArtifactKind, JobStatus, JobStore, NewArtifact


def test_migrate_store_copies_with_progress_says_what_to_set_and_refuses_a_second_time(
    tmp_path: Path, postgres_url: str, capsys
) -> None:
    database = tmp_path / "data" / "storyloom.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    with JobStore.open(database) as store:
        jobs = [store.enqueue("imagine", {"prompt": f"fox {n}"}, user_id=n) for n in range(3)]
        store.claim("w", ["imagine"])
        store.complete(jobs[0].id, "w", [NewArtifact(ArtifactKind.GRID, 0, "grid.png", "image/png", b"\x89PNG")])
        store.save_user_settings(7, {"aspect_ratio": "3:2"})

    assert main(["queue", "migrate-store", str(database), postgres_url, "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"copying {database} into PostgreSQL postgres@127.0.0.1:5432/test"
    rows = {line.split()[0]: line.split()[1:] for line in out if line.startswith("  ") and line.endswith(" rows")}
    assert rows["jobs"] == ["3", "rows"] and rows["artifacts"] == ["1", "rows"]
    assert rows["user_settings"] == ["1", "rows"] and rows["characters"] == ["0", "rows"]
    assert "copied 7 rows of" in "\n".join(out)  # 3 jobs, 1 artifact, 1 turn, 1 duration, 1 setting
    assert out[-4:] == [
        "Now point every host at it, in config.toml:",
        "  [queue]",
        f'  database = "{postgres_url}"',
        "or STORYLOOM_QUEUE__DATABASE in the environment; the password goes in PGPASSWORD or ~/.pgpass.",
    ]

    with JobStore.open(postgres_url) as store:
        assert [job.id for job in store.list_jobs(tuple(JobStatus))] == [3, 2, 1]
        assert store.get(jobs[0].id).status is JobStatus.SUCCEEDED

    assert main(["queue", "migrate-store", str(database), postgres_url, "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("storyloom: PostgreSQL postgres@127.0.0.1:5432/test already holds a job store (rows in ")
    assert "\n" not in error


def test_the_url_to_set_never_carries_the_password() -> None:
    assert url_without_password("postgresql://storyloom:s3cret@db:5432/storyloom") == (
        "postgresql://storyloom@db:5432/storyloom"
    )
    assert url_without_password("postgresql://storyloom@db/storyloom?sslmode=require") == (
        "postgresql://storyloom@db/storyloom?sslmode=require"
    )
    assert url_without_password("postgresql://db/storyloom") == "postgresql://db/storyloom"
