"""Worker IDs: ``host/pid/device``, so a lease says which process on which machine holds a job.

The supervisor computes a child's ID from its PID, and a worker starting up can tell that a lease held by
another PID on its own host belongs to a process that no longer exists.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    device: str

    @property
    def id(self) -> str:
        return f"{self.host}/{self.pid}/{self.device}"

    @classmethod
    def current(cls, device: str) -> WorkerIdentity:
        return cls(socket.gethostname(), os.getpid(), device)

    @classmethod
    def for_child(cls, device: str, pid: int) -> WorkerIdentity:
        return cls(socket.gethostname(), pid, device)

    @classmethod
    def parse(cls, worker_id: str) -> WorkerIdentity | None:
        host, _, rest = worker_id.partition("/")
        pid, _, device = rest.partition("/")
        if not host or not pid.isdigit() or not device:
            return None
        return cls(host, int(pid), device)


def host_prefix() -> str:
    return f"{socket.gethostname()}/"
