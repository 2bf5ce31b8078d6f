"""Files that travel through the store between hosts, and each host's local cache of them.

A blob is named by the SHA-256 of its bytes (``blob_digest``). Hosts share nothing but the store: a character
trained on one host is a LoRA blob every other host fetches once into its :class:`BlobCache` (verified against
the digest, so a damaged or forged file is refused), keeps while it is used, and evicts, least recently used
first, when the cache outgrows its size bound. A folder (a training's photos with their captions) travels as
one deterministic zip (``pack_files``), so the same photos are always the same blob.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from storyloom.errors import InvalidInput, StoreError

logger = logging.getLogger(__name__)

MAX_BLOB_BYTES = 1024 * 1024 * 1024  # PostgreSQL's limit for one value; far above any LoRA or photo set
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)  # fixed, so packing the same files twice gives the same bytes
_DIGEST_CHARS = frozenset("0123456789abcdef")


def blob_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """``digest`` if it is a hex SHA-256 (it becomes a file name), else ``InvalidInput``."""
    if len(digest) != 64 or not set(digest) <= _DIGEST_CHARS:
        raise InvalidInput(f"{digest[:80]!r} is not the name of a stored file (64 hex digits)")
    return digest


def pack_files(files: Sequence[tuple[str, bytes]]) -> bytes:
    """One zip of ``(name, data)`` pairs (plain names, no folders), byte-identical for the same files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files:
            if not name or Path(name).name != name or name.startswith("."):
                raise InvalidInput(f"{name!r} cannot be stored as a file name (plain names only)")
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


class BlobCache:
    """This host's copies of stored files: ``<directory>/<digest[:2]>/<digest><suffix>``, at most ``max_bytes``.

    Safe for several processes of one host: files appear by atomic rename, and a file being evicted by one
    process while another opens it is simply fetched again."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def file(self, digest: str, fetch: Callable[[], bytes | None], *, suffix: str = "", what: str = "file") -> Path:
        """The local path of blob ``digest``, fetched with ``fetch`` (the store's ``blob``) when not cached.

        ``StoreError`` when the store no longer has it or its bytes do not match the digest."""
        path = self._path(check_digest(digest), suffix)
        if path.is_file():
            os.utime(path)  # recently used: evicted last
            return path
        data = fetch()
        if data is None:
            raise StoreError(f"the {what} ({digest[:12]}…) is no longer in the job store; it cannot be used")
        if blob_digest(data) != digest:
            raise StoreError(f"the {what} ({digest[:12]}…) in the job store is damaged (its SHA-256 does not match)")
        with self._lock:
            self._write(path, data)
            self._evict(keep=path)
        return path

    def folder(self, digest: str, fetch: Callable[[], bytes | None], *, what: str = "files") -> Path:
        """Blob ``digest`` (made by :func:`pack_files`) unpacked into a folder of this cache."""
        target = self._path(check_digest(digest), ".d")
        if target.is_dir():
            os.utime(target)
            return target
        archive_path = self.file(digest, fetch, suffix=".zip", what=what)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        staging.mkdir(parents=True)
        try:
            with zipfile.ZipFile(archive_path) as archive:
                for info in archive.infolist():
                    name = Path(info.filename).name
                    if name != info.filename or name.startswith(".") or info.is_dir():
                        raise StoreError(
                            f"the stored {what} ({digest[:12]}…) hold an unexpected entry {info.filename!r}"
                        )
                    (staging / name).write_bytes(archive.read(info))
            try:
                os.replace(staging, target)
            except OSError:  # another process unpacked it first
                shutil.rmtree(staging, ignore_errors=True)
            archive_path.unlink(missing_ok=True)  # the folder is the cached copy now
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _path(self, digest: str, suffix: str) -> Path:
        return self.directory / digest[:2] / f"{digest}{suffix}"

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)

    def size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, Path]]:
        entries: list[tuple[float, int, Path]] = []
        if not self.directory.is_dir():
            return entries
        for shard in self.directory.iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        size = sum(f.stat().st_size for f in entry.iterdir())
                    else:
                        size = entry.stat().st_size
                    entries.append((entry.stat().st_mtime, size, entry))
                except FileNotFoundError:
                    continue  # evicted by another process meanwhile
        return entries

    def _evict(self, keep: Path) -> None:
        entries = sorted(self._entries(), key=lambda entry: entry[0])
        total = sum(size for _, size, _ in entries)
        for _, size, entry in entries:
            if total <= self.max_bytes:
                break
            if entry == keep or entry.with_suffix("") == keep.with_suffix(""):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            total -= size
            logger.info("evicted %s from the file cache", entry.name)
