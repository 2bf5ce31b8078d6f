"""The disk reserve beside a SQLite store: made only while the disk has room, given back whole."""

from __future__ import annotations

from pathlib import Path

from storyloom.queue.disk_reserve import ensure_reserve, release_reserve, reserve_path


def test_the_reserve_is_made_once_and_given_back_whole(tmp_path: Path) -> None:
    database = tmp_path / "storyloom.db"
    assert ensure_reserve(database, 3 * 1024 * 1024 + 5)
    path = reserve_path(database)
    assert path.name == "storyloom.db.reserve" and path.stat().st_size == 3 * 1024 * 1024 + 5
    assert path.stat().st_blocks * 512 >= path.stat().st_size  # real blocks, not a sparse file
    assert ensure_reserve(database, 3 * 1024 * 1024 + 5)  # already there
    assert release_reserve(database) == 3 * 1024 * 1024 + 5
    assert not path.exists() and release_reserve(database) == 0


def test_no_reserve_is_made_where_it_would_fill_the_disk(tmp_path: Path) -> None:
    database = tmp_path / "storyloom.db"
    assert not ensure_reserve(database, 10**18)  # no disk has four times this free
    assert not reserve_path(database).exists() and list(tmp_path.iterdir()) == []
