"""Resume tokens: creation, the owner-only ``.resume-token`` file, constant-time checks."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import NamedTuple

from mcp_core import store

TOKEN_FILE = ".resume-token"
TOKEN_BYTES = 32


def new_token() -> str:
    """64 lowercase hex characters (32 random bytes)."""
    # what secrets.token_hex does, without importing secrets (and OpenSSL) on start's path
    return os.urandom(TOKEN_BYTES).hex()


def token_path(run_dir: Path) -> Path:
    return run_dir / TOKEN_FILE


def write_token_file(run_dir: Path, token: str) -> Path:
    """Write ``<run dir>/.resume-token`` (the token and a newline), readable by the owner only."""
    path = token_path(run_dir)
    store.atomic_write_text(path, token + "\n", mode=0o600)
    return path


class TokenRead(NamedTuple):  # not a dataclass: see paths.Locations
    """What reading ``.resume-token`` gave: the trimmed token, or why there is none."""

    token: str | None
    error_code: str | None = None  # e.g. "ENOENT" when the file could not be read


def read_token_file(run_dir: Path) -> TokenRead:
    try:
        text = store.read_run_file(token_path(run_dir), follow=False).decode("utf-8", "surrogateescape")
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "EIO")
        return TokenRead(None, code)
    token = text.strip()
    return TokenRead(token or None)


def tokens_equal(given: str, expected: str) -> bool:
    """Compare two tokens in constant time (for equal lengths)."""
    import hmac  # loads OpenSSL: only resume compares tokens

    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def exposed_to_others(run_dir: Path) -> bool:
    """True when ``.resume-token`` exists and its group or others may read it."""
    try:
        mode = token_path(run_dir).stat().st_mode
    except OSError:
        return False
    return bool(stat.S_IMODE(mode) & (stat.S_IRGRP | stat.S_IROTH))


def manifest_token(value: object) -> str | None:
    """The manifest's ``resume_token`` when it is a usable (non-empty string) token."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None

