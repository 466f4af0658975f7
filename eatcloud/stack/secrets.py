"""Secrets of the local development runs, made on this machine and kept under the stack's
data folder (``.stack/``, never committed)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def local_signing_key(data_dir: Path) -> str:
    """The key that ``eatcloud run`` signs access tokens with on this machine: 48 random
    bytes made on the first run, kept in ``<data_dir>/jwt-secret`` (owner-only), so sessions
    survive a restart of the run."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: two runs starting at once keep whichever key was written first.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key
