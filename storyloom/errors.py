"""One error hierarchy. A ``StoryloomError`` message is safe to show a user as it is;
anything else is a bug, logged with its traceback and shown as one short line."""

from __future__ import annotations


class StoryloomError(Exception):
    """Base class: the message is short, names the problem, and is safe to show anyone."""


class InvalidInput(StoryloomError, ValueError):
    """A request's value is out of range or malformed (the message says what is allowed)."""


class ConfigError(StoryloomError):
    """A configuration key has a bad value; start-up stops."""


class ModelUnavailable(StoryloomError):
    """A model could not be loaded (not downloaded, offline, wrong format)."""


class OutOfMemory(StoryloomError):
    """The device ran out of memory even after retrying with a smaller batch."""


class JobCanceled(StoryloomError):
    """The job was canceled while it ran."""


class QueueFull(StoryloomError):
    """A per-user or global cap on waiting jobs was reached."""


class StoreError(StoryloomError):
    """The job store cannot be used (locked, full, corrupt or from a newer version)."""


class StoreFull(StoreError):
    """The disk under the job store is full: nothing that needs new space can be written."""
