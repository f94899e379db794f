"""Files that survive a crash: flushed and fsynced (the file, then its folder), and their
checksums to find one that did not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def flush(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
