"""Files that travel between hosts through the store: stored once by digest on both backends, fetched into a
host's cache verified against the digest, evicted least recently used first, folders packed deterministically."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from storyloom.errors import InvalidInput, StoreError
from storyloom.queue import JobStore, NewCharacter
from storyloom.queue.blobs import BlobCache, blob_digest, pack_files
from tests.support.clock import Clock

DAY = 86400.0


def test_a_blob_is_stored_once_by_its_digest_and_read_back(database: str) -> None:
    with JobStore.open(database) as store:
        data = os.urandom(300_000)
        digest = store.put_blob(data)
        assert digest == hashlib.sha256(data).hexdigest()
        assert store.put_blob(data) == digest  # idempotent: the same bytes are one blob
        assert store.blob(digest) == data and store.has_blob(digest)
        assert store.blob("0" * 64) is None and not store.has_blob("0" * 64)


def test_unreferenced_blobs_are_purged_and_a_characters_lora_is_kept(database: str) -> None:
    clock = Clock()
    with JobStore.open(database, clock=clock) as store:
        kept = store.put_blob(b"lora weights")
        photos = store.put_blob(b"photos of a queued training")
        orphan = store.put_blob(b"nobody needs this")
        store.add_character(
            NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x", lora_digest=kept)
        )
        store.enqueue(
            "train_subject",
            {"name": "Paws", "identifier": "ohwx", "class_name": "dog", "photos": photos},
            user_id=1,
        )
        assert store.purge_blobs(older_than_days=1) == 0  # all still young
        clock.now += 2 * DAY
        assert store.purge_blobs(older_than_days=1) == 1
        assert store.blob(orphan) is None and store.blob(kept) is not None and store.blob(photos) is not None


def test_the_cache_fetches_once_verifies_and_keeps_a_file(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=10**6)
    data = b"safetensors bytes"
    digest = blob_digest(data)
    fetched = []

    def fetch() -> bytes:
        fetched.append(1)
        return data

    path = cache.file(digest, fetch, suffix=".safetensors")
    assert path.read_bytes() == data and path.suffix == ".safetensors"
    assert cache.file(digest, fetch, suffix=".safetensors") == path
    assert len(fetched) == 1  # a warm host does not download again


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=10**6)
    digest = blob_digest(b"the real weights")
    with pytest.raises(StoreError, match="LoRA of character 'Mittens'.*damaged"):
        cache.file(digest, lambda: b"forged weights", what="LoRA of character 'Mittens'")
    with pytest.raises(StoreError, match="no longer in the job store"):
        cache.file(digest, lambda: None)
    assert cache.size() == 0  # nothing unverified was kept
    with pytest.raises(InvalidInput, match="64 hex digits"):
        cache.file("../../etc/passwd", lambda: b"")


def test_the_cache_evicts_the_least_recently_used_beyond_its_bound(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=2500)
    blobs = [bytes([i]) * 1000 for i in range(3)]
    paths = []
    for data in blobs[:2]:
        paths.append(cache.file(blob_digest(data), lambda data=data: data))
    old = time.time() - 100
    os.utime(paths[1], (old, old))  # the second is the least recently used now
    paths.append(cache.file(blob_digest(blobs[2]), lambda: blobs[2]))
    assert [p.exists() for p in paths] == [True, False, True]
    assert cache.size() <= 2500


def test_a_folder_travels_as_one_deterministic_blob(tmp_path: Path) -> None:
    files = [("photo_01.png", b"png one"), ("photo_01.txt", b"a cat"), ("photo_02.jpg", b"jpeg two")]
    packed = pack_files(files)
    assert pack_files(files) == packed  # same photos, same digest
    cache = BlobCache(tmp_path / "cache", max_bytes=10**6)
    folder = cache.folder(blob_digest(packed), lambda: packed, what="training photos")
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == sorted(files)
    assert cache.folder(blob_digest(packed), lambda: None) == folder  # cached: no fetch needed
    with pytest.raises(InvalidInput, match="plain names only"):
        pack_files([("../escape.png", b"x")])
