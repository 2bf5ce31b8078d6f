"""Room kept in reserve beside a SQLite job store, so that ``storyloom queue purge`` works on a full disk.

On a completely full disk SQLite cannot even delete: a delete appends pages to the write-ahead log, and the
log cannot grow. So while there is room, the bot keeps a file of ``RESERVE_BYTES`` next to the database
(``storyloom.db.reserve``); a purge that finds the disk full removes it, deletes old jobs in the space it
gave back, and the bot makes it again once the disk has room. Torch-free; nothing here touches the database.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

RESERVE_BYTES = 32 * 1024 * 1024
# The reserve is only made while the disk has this many times its size free: it must never be what fills it.
FREE_FACTOR = 4
_CHUNK = 1024 * 1024


def reserve_path(database: Path) -> Path:
    return database.with_name(database.name + ".reserve")


def ensure_reserve(database: Path, size: int = RESERVE_BYTES) -> bool:
    """Make the reserve if it is missing and the disk has room; True when it is in place."""
    path = reserve_path(database)
    if path.is_file() and path.stat().st_size >= size:
        return True
    if not database.parent.is_dir() or shutil.disk_usage(database.parent).free < FREE_FACTOR * size:
        return False
    partial = path.with_name(path.name + ".tmp")
    try:
        with open(partial, "wb") as file:  # real blocks, not a sparse file: the space must truly be taken
            for _ in range(size // _CHUNK):
                file.write(bytes(_CHUNK))
            file.write(bytes(size % _CHUNK))
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)
        return False
    return True


def release_reserve(database: Path) -> int:
    """Remove the reserve; returns the bytes given back to the disk (0 when there was none)."""
    path = reserve_path(database)
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
