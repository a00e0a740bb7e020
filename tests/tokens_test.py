from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from mcp_core import tokens


def test_new_token_is_64_lowercase_hex_and_random() -> None:
    first, second = tokens.new_token(), tokens.new_token()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert first != second


def test_token_file_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tokens.write_token_file(tmp_path, "ab" * 32)
    finally:
        os.umask(old)
    assert path == tmp_path / ".resume-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "ab" * 32 + "\n"
    assert not tokens.exposed_to_others(tmp_path)


def test_exposed_when_group_or_others_may_read(tmp_path: Path) -> None:
    path = tokens.write_token_file(tmp_path, "cd" * 32)
    path.chmod(0o640)
    assert tokens.exposed_to_others(tmp_path)
    path.chmod(0o604)
    assert tokens.exposed_to_others(tmp_path)
    assert not tokens.exposed_to_others(tmp_path / "absent")


def test_read_token_file_trims_and_reports_why_it_failed(tmp_path: Path) -> None:
    assert tokens.read_token_file(tmp_path) == tokens.TokenRead(None, "ENOENT")
    (tmp_path / ".resume-token").write_text("  \n")
    assert tokens.read_token_file(tmp_path) == tokens.TokenRead(None, None)
    (tmp_path / ".resume-token").write_text(" abc \n")
    assert tokens.read_token_file(tmp_path) == tokens.TokenRead("abc", None)
    (tmp_path / ".resume-token").unlink()
    (tmp_path / ".resume-token").mkdir()
    assert tokens.read_token_file(tmp_path) == tokens.TokenRead(None, "EISDIR")


def test_tokens_equal() -> None:
    token = tokens.new_token()
    assert tokens.tokens_equal(token, token)
    assert not tokens.tokens_equal(token, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not tokens.tokens_equal(token, token[:10])
    assert not tokens.tokens_equal("é", token)  # non-ASCII input compares, never raises


def test_manifest_token_accepts_only_non_empty_strings() -> None:
    assert tokens.manifest_token(" abc ") == "abc"
    for value in (None, "", "  ", 12, ["abc"]):
        assert tokens.manifest_token(value) is None
