"""Why the edge cannot use its file, in a store manager's words: a full disk,
a read-only medium, a file it may not write. Checked with the operating system
(``os.statvfs``, ``shutil.disk_usage``, ``os.access``) when SQLite fails with
its own terse "disk I/O error" or "unable to open database file"."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LOW_DISK_BYTES = 1 << 20
"""Less free space than this is a full disk for the edge: a sale, its outbox
entry and the write-ahead log need a few pages, a snapshot page megabytes."""


def side_files(path: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and shared-memory index next to ``path``."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def disk_trouble(path: str | Path) -> str | None:
    """Why ``path`` (an edge database) cannot be written, or None if no such
    reason shows: its folder is missing, on a read-only disk, not writable, or
    the disk is full."""
    path = Path(path).absolute()
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    try:
        flags = os.statvfs(folder).f_flag
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if flags & os.ST_RDONLY:
        return f"{path} is on a read-only disk"
    for item in (path, *side_files(path)):
        if item.exists() and not os.access(item, os.W_OK):
            return f"{item} is not writable (its permissions or owner)"
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable (its permissions or owner)"
    if free < LOW_DISK_BYTES:
        return f"the disk holding {path} is full ({free // 1024} KB free)"
    return None


def wal_holds_data(path: str | Path) -> bool:
    """True if the write-ahead log next to ``path`` holds anything: changes
    committed but not yet copied into the file itself."""
    wal = side_files(Path(path))[0]
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False
