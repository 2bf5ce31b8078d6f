"""Paths that come from a request (a job's parameters, a Discord upload) must stay inside the data directory.

A worker trusts nothing in a job row: ``../../etc`` or an absolute path elsewhere is refused with one clear line,
and symbolic links are resolved first, so a link cannot lead outside either.
"""

from __future__ import annotations

import re
from pathlib import Path

from storyloom.errors import InvalidInput


def inside_data_dir(path: str | Path, data_dir: Path, *, what: str) -> Path:
    """``path`` (relative to ``data_dir``, or absolute) resolved, or ``InvalidInput`` when it leads outside."""
    root = data_dir.expanduser().resolve()
    candidate = Path(path).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(f"the {what} {str(path)!r} is outside the data directory; put it under {root}")
    return resolved


def relative_to_data_dir(path: Path, data_dir: Path) -> str:
    """How a file is recorded in the store: relative to the data directory when inside it, else absolute."""
    root = data_dir.expanduser().resolve()
    resolved = path.expanduser().resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return str(resolved)


def from_data_dir(recorded: str, data_dir: Path) -> Path:
    """The file a recorded path names (the inverse of :func:`relative_to_data_dir`)."""
    path = Path(recorded).expanduser()
    return path if path.is_absolute() else data_dir.expanduser().resolve() / path


def slug(text: str, *, fallback: str = "item") -> str:
    """A file-system-safe lower-case name (``Mr Paws!`` → ``mr-paws``)."""
    cleaned = "-".join(re.findall(r"[a-z0-9]+", text.casefold()))
    return cleaned[:48] or fallback
