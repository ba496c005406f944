"""Durability on a local filesystem, shared by the Parquet store and the receiver's log."""

from __future__ import annotations

import os


def fsync_dir(directory: str) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
