"""Copying a one-machine store (a SQLite file) into PostgreSQL: every row arrives, the copy behaves as the file
did (job ids, results, the next id, the fairness order), a filled target is refused, and a failure half-way
leaves the target empty."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput, StoreError
from storyloom.queue import ArtifactKind, JobKind, JobStatus, JobStore, NewArtifact, NewCharacter, NewJob
from storyloom.queue.job import JobError, JobInput
from storyloom.queue.postgres import from_sqlite
from storyloom.queue.postgres.from_sqlite import TableProgress, copy_sqlite_store
from tests.support.clock import Clock
from tests.support.postgres import server_url

KINDS = [kind.value for kind in JobKind]
LORA_BYTES = b"safetensors of mittens" * 100
SETTINGS = QueueConfig(max_waiting_per_user=20)


def picture(index: int, kind: ArtifactKind = ArtifactKind.IMAGE) -> NewArtifact:
    return NewArtifact(kind, index, f"image_{index + 1}.png", "image/png", b"\x89PNG" + bytes(range(index, 256)), {})


def finish(store: JobStore, job_id: int, artifacts: list[NewArtifact], followups: list[NewJob] = ()) -> None:
    claimed = store.claim("host-a/0", KINDS)
    assert claimed is not None and claimed.id == job_id
    store.complete(job_id, "host-a/0", artifacts, followups)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def populated(data_dir: Path) -> dict[str, Any]:
    """A store that has seen a bit of everything: finished, failed, canceled, running and waiting jobs of several
    users, results and their delivery, a story with its pages, a picture given with a request, settings, two
    characters (one whose LoRA file is gone), a stopped worker, and a purged job (the highest id ever given)."""
    clock = Clock()
    path = data_dir / "storyloom.db"
    with JobStore.open(path, SETTINGS, clock=clock) as store:
        fox = store.enqueue("imagine", {"prompt": "a fox"}, user_id=1, guild_id=10, channel_id=20)
        finish(store, fox.id, [picture(0, ArtifactKind.GRID), *(picture(i) for i in range(4))])
        assert store.begin_delivery(fox.id) is not None
        store.record_delivery(fox.id, [555, 556])
        clock.now += 5
        story = store.enqueue("story", {"summary": "a cat and a ball"}, user_id=2, guild_id=10, channel_id=20)
        pages = [NewJob(JobKind.STORY_PAGE, {"page": i, "text": f"Page {i + 1}.", "prompt": "a cat"}, page_index=i)
                 for i in range(2)]  # fmt: skip
        finish(store, story.id, [NewArtifact(ArtifactKind.TEXT, 0, "story.json", "application/json", b"{}")], pages)
        clock.now += 5
        broken = store.enqueue("imagine", {"prompt": "a storm"}, user_id=3)
        assert store.claim("host-a/0", KINDS).id == broken.id  # user 3 was never served: before user 2's pages
        store.fail(broken.id, "host-a/0", JobError("out of memory", "OOM"))
        canceled = store.enqueue("imagine", {"prompt": "never mind"}, user_id=1)
        store.cancel(canceled.id)
        described = store.enqueue(
            "describe", {}, user_id=4, inputs=[JobInput(0, "photo.png", "image/png", b"\x89PNG photo")]
        )
        waiting = [store.enqueue("imagine", {"prompt": f"wait {n}"}, user_id=user) for n, user in enumerate((1, 3, 1))]
        running = store.claim("host-a/0", KINDS)
        store.report_progress(running.id, "host-a/0", 3, 30, stage="drawing")
        store.save_user_settings(1, {"aspect_ratio": "2:3", "negative": "blurry"})
        lora = data_dir / "characters" / "mittens" / "lora.safetensors"
        lora.parent.mkdir(parents=True)
        lora.write_bytes(LORA_BYTES)
        store.add_character(NewCharacter("Mittens", "bhna", "cat", "characters/mittens/lora.safetensors",
                                         trained_by=1, guild_id=10, preview=b"jpeg", metadata={"steps": 400}))  # fmt: skip
        store.add_character(NewCharacter("Ghost", "ghst", "dog", "characters/ghost/lora.safetensors"))
        store.register_worker("host-a/0", host="host-a", pid=4321, device="cuda:0")
        store.stop_worker("host-a/0")
        purged = store.enqueue("imagine", {"prompt": "old"}, user_id=5)
        store.connection.execute("DELETE FROM jobs WHERE id = ?", (purged.id,))  # as `queue purge` would
        clock.now += 600  # later than any lease: nothing of this install is still running
    return {
        "path": path, "clock": clock, "fox": fox, "story": story, "broken": broken, "canceled": canceled,
        "described": described, "waiting": waiting, "running": running, "purged": purged,
    }  # fmt: skip


def copy(populated: dict[str, Any], url: str, data_dir: Path, **kwargs) -> Any:
    return copy_sqlite_store(
        populated["path"], url, SETTINGS, lora_file=lambda recorded: data_dir / recorded, clock=populated["clock"],
        **kwargs,
    )  # fmt: skip


def sqlite_rows(path: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    with sqlite3.connect(path) as connection:
        names = [n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {}
        for name in names:
            if name.startswith("sqlite_"):
                continue
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({name})")]
            tables[name] = (columns, sorted(connection.execute(f"SELECT * FROM {name}").fetchall(), key=repr))
    return tables


def postgres_rows(url: str, table: str, columns: list[str]) -> list[tuple]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted(rows, key=repr)


def postgres_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        names = [n for (n,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'storyloom_schema'"
        )]  # fmt: skip
        return {name: connection.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0] for name in names}


def test_every_row_of_every_table_arrives_and_loras_move_into_the_store(
    populated, postgres_url: str, data_dir: Path, monkeypatch
) -> None:
    monkeypatch.setattr(from_sqlite, "PROGRESS_EVERY_ROWS", 4)
    seen: list[TableProgress] = []
    copied = copy(populated, postgres_url, data_dir, progress=seen.append)

    source = sqlite_rows(populated["path"])
    assert set(copied.rows) == set(source) and copied.total_rows == sum(len(rows) for _, rows in source.values())
    assert {"jobs", "artifacts", "deliveries", "user_turns", "durations", "workers", "user_settings", "characters",
            "job_inputs"} <= set(copied.rows)  # fmt: skip
    assert list(copied.rows).index("jobs") < list(copied.rows).index("artifacts")  # parents first
    for table, (columns, rows) in source.items():
        assert copied.rows[table] == len(rows), table
        if table in ("characters", "blobs"):
            continue  # checked below: the copy stored the LoRA files
        assert postgres_rows(postgres_url, table, columns) == rows, table
    assert copied.rows["jobs"] == 10 and copied.rows["artifacts"] == 6 and copied.rows["job_inputs"] == 1
    done = [p for p in seen if p.done]
    assert [(p.table, p.copied) for p in done] == list(copied.rows.items())
    assert [(p.copied, p.total) for p in seen if p.table == "jobs"] == [(0, 10), (4, 10), (8, 10), (10, 10)]

    digest = hashlib.sha256(LORA_BYTES).hexdigest()
    assert copied.loras_stored == ("Mittens",) and len(copied.loras_missing) == 1
    assert "Ghost" in copied.loras_missing[0] and "characters/ghost/lora.safetensors" in copied.loras_missing[0]
    columns, rows = source["characters"]
    copied_characters = postgres_rows(postgres_url, "characters", columns)
    digest_at = columns.index("lora_digest")
    assert [row[digest_at] for row in rows] == [None, None]
    assert sorted(row[digest_at] or "" for row in copied_characters) == ["", digest]
    without_digest = [row[:digest_at] + row[digest_at + 1 :] for row in copied_characters]
    assert without_digest == [row[:digest_at] + row[digest_at + 1 :] for row in rows]
    assert postgres_rows(postgres_url, "blobs", ["digest", "size", "data"]) == [(digest, len(LORA_BYTES), LORA_BYTES)]


def test_the_copy_behaves_as_the_file_did(populated, postgres_url: str, data_dir: Path) -> None:
    copy(populated, postgres_url, data_dir)
    clock = populated["clock"]
    with (
        JobStore.open(populated["path"], SETTINGS, clock=clock) as old,
        JobStore.open(postgres_url, SETTINGS, clock=clock) as new,
    ):
        everything = tuple(JobStatus)
        assert new.list_jobs(everything) == old.list_jobs(everything)
        for job in old.list_jobs(everything):
            assert new.get(job.id) == old.get(job.id)
            assert new.artifacts(job.id) == old.artifacts(job.id)
            assert new.job_inputs(job.id) == old.job_inputs(job.id)
        fox, story = populated["fox"], populated["story"]
        assert new.is_delivered(fox.id) and new.delivered_messages(fox.id) == (555, 556)
        waiting_delivery = old.list_undelivered()
        assert new.list_undelivered() == waiting_delivery and [j.id for j in waiting_delivery] == [story.id]
        assert new.user_settings(1) == old.user_settings(1) == {"aspect_ratio": "2:3", "negative": "blurry"}
        assert new.positions() == old.positions()
        mittens = new.character("Mittens", guild_id=10)
        assert (mittens.identifier, mittens.trained_by, mittens.preview) == ("bhna", 1, b"jpeg")
        assert new.blob(mittens.lora_digest) == LORA_BYTES

        # The next id continues after every id the file ever gave out, the purged job's included.
        assert new.enqueue("imagine", {"prompt": "new"}, user_id=6).id == populated["purged"].id + 1
        assert old.enqueue("imagine", {"prompt": "new"}, user_id=6).id == populated["purged"].id + 1
        # Fairness continues: both stores hand out the waiting jobs in the same order, least recently served user
        # first; the job that was running on the old machine is handed back (its lease ran out) and runs again.
        order_old = [job.id for job in iter(lambda: old.claim("host-b/0", KINDS), None)]
        order_new = [job.id for job in iter(lambda: new.claim("host-b/0", KINDS), None)]
        assert order_new == order_old and populated["running"].id in order_new
        assert [new.get(job_id).user_id for job_id in order_new] == [6, 1, 2, 3, 4, 1, 2]


def test_a_second_copy_into_the_same_target_is_refused(populated, postgres_url: str, data_dir: Path) -> None:
    copy(populated, postgres_url, data_dir)
    before = postgres_counts(postgres_url)
    with pytest.raises(InvalidInput) as refused:
        copy(populated, postgres_url, data_dir)
    message = str(refused.value)
    assert message.startswith("PostgreSQL postgres@127.0.0.1:5432/test already holds a job store (rows in ")
    assert "jobs" in message and "\n" not in message
    assert postgres_counts(postgres_url) == before


def test_a_row_postgresql_cannot_hold_leaves_the_target_empty(populated, postgres_url: str, data_dir: Path) -> None:
    with sqlite3.connect(populated["path"]) as connection:  # SQLite keeps text in an INTEGER column
        connection.execute(
            "INSERT INTO workers (id, host, pid, device, started_at, last_seen, stopped_at) "
            "VALUES ('host-z/0', 'host-z', 'not a pid', 'cpu', 0, 0, 0)"
        )
    with pytest.raises(StoreError) as failed:
        copy(populated, postgres_url, data_dir)
    assert str(failed.value) == (
        "the copy into PostgreSQL postgres@127.0.0.1:5432/test failed, so nothing was copied: row id='host-z/0' of "
        "table workers: column pid holds 'not a pid', which a bigint column cannot hold"
    )
    assert set(postgres_counts(postgres_url).values()) == {0}  # jobs and artifacts had been copied before it
    with JobStore.open(postgres_url, SETTINGS) as store:
        assert store.enqueue("imagine", {"prompt": "first"}, user_id=1).id == 1
        assert store.blob(hashlib.sha256(LORA_BYTES).hexdigest()) is None


def test_a_row_the_server_refuses_leaves_the_target_empty(populated, postgres_url: str, data_dir: Path) -> None:
    with sqlite3.connect(populated["path"]) as connection:  # an artifact of a job that is gone
        connection.execute(
            "INSERT INTO artifacts (job_id, kind, idx, name, mime, data, created_at) "
            "VALUES (9999, 'image', 0, 'lost.png', 'image/png', x'89', 0)"
        )
    with pytest.raises(StoreError) as failed:
        copy(populated, postgres_url, data_dir)
    message = str(failed.value)
    assert message.startswith("the copy into PostgreSQL postgres@127.0.0.1:5432/test failed, so nothing was copied")
    assert "artifacts" in message and "(job_id)=(9999)" in message and "\n" not in message
    assert set(postgres_counts(postgres_url).values()) == {0}


def test_a_connection_lost_half_way_leaves_the_target_empty(populated, postgres_url: str, data_dir: Path) -> None:
    [options] = parse_qs(urlsplit(postgres_url).query)["options"]
    schema = options.removeprefix("-csearch_path=")

    def kill_the_copy(progress: TableProgress) -> None:
        if progress.table == "artifacts" and not progress.done:  # the jobs are in, not yet committed
            with psycopg.connect(server_url(), autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = 'jobs' AND l.mode = 'ExclusiveLock'",
                    (schema,),
                ).fetchall()
            assert killed == [(True,)]

    with pytest.raises(StoreError) as failed:
        copy(populated, postgres_url, data_dir, progress=kill_the_copy)
    assert str(failed.value).startswith(
        "the copy into PostgreSQL postgres@127.0.0.1:5432/test failed, so nothing was copied: terminating connection"
    )
    assert set(postgres_counts(postgres_url).values()) == {0}


def test_a_running_install_a_missing_file_and_swapped_arguments_are_refused(
    populated, postgres_url: str, data_dir: Path
) -> None:
    clock = populated["clock"]
    with JobStore.open(populated["path"], SETTINGS, clock=clock) as store:
        store.register_worker("host-a/1", host="host-a", pid=99, device="cuda:1")
    with pytest.raises(InvalidInput, match=r"^1 worker\(s\) of .* reported in the last 30 s: stop storyloom"):
        copy(populated, postgres_url, data_dir)
    with pytest.raises(InvalidInput, match="^there is no job store at .*nothing.db"):
        copy_sqlite_store(data_dir / "nothing.db", postgres_url)
    with pytest.raises(InvalidInput, match="is a PostgreSQL URL; give the SQLite file"):
        copy_sqlite_store(postgres_url, postgres_url)
    with pytest.raises(InvalidInput, match="is not a PostgreSQL URL"):
        copy_sqlite_store(populated["path"], str(populated["path"]))
    assert set(postgres_counts(postgres_url).values()) == {0}


def test_a_character_made_from_a_picture_arrives_with_its_picture(postgres_url: str, data_dir: Path) -> None:
    path = data_dir / "storyloom.db"
    with JobStore.open(path, SETTINGS) as store:
        digest = store.put_blob(b"a drawing of pip")
        store.add_character(NewCharacter("Pip", "", "", "", reference_digest=digest, reference_weight=0.7, guild_id=10))
    copied = copy_sqlite_store(path, postgres_url, SETTINGS, lora_file=lambda recorded: data_dir / recorded)
    assert copied.loras_stored == () and copied.loras_missing == ()  # no LoRA to move, none missing
    with JobStore.open(postgres_url, SETTINGS) as store:
        pip = store.character("Pip", guild_id=10)
        assert (pip.reference_digest, pip.reference_weight, pip.has_lora) == (digest, 0.7, False)
        assert store.blob(digest) == b"a drawing of pip"
