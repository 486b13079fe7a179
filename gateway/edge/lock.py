"""One gateway per state directory: an exclusive lock held for the daemon's life.

Two daemons on one queue would split the PBX's bytes between them, take the broker
session from each other and drop each other's tables. The lock is ``flock`` on
``<state_dir>/pbxgw.lock``: the kernel releases it when the process dies however it dies
(``kill -9`` included), so a stale lock file never keeps the next start out. The file
holds the owner's pid, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gateway.errors import GatewayError

LOCK_NAME = "pbxgw.lock"


class StateDirBusy(GatewayError):
    """Another live gateway holds the state directory."""

    exit_status = 78  # EX_CONFIG: systemd's RestartPreventExitStatus does not retry it


def lock_state_dir(state_dir: Path) -> int:
    """Take the state directory (created, private, if missing); the lock's descriptor,
    held until the process ends.

    :raises StateDirBusy: another process holds it.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StateDirBusy(f"another pbxgw (pid {owner}) is using {state_dir}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
