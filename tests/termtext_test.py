"""The terminal-safe text every text view uses."""

from __future__ import annotations

import pytest

from mcp_core.termtext import VIEW_FIELD_CHARS, cut, printable

ORDINARY = [
    "Command exited with status 0; last output: ok | é ✓ 日本",
    "Guardrail command missing; run scripts/run-mcp-diagnostics.sh --no-watch.\nsecond line\twith a tab",
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_passes_unchanged_in_multiline_views(text: str) -> None:
    assert printable(text, multiline=True) == text


def test_controls_are_escaped() -> None:
    hostile = "\x1b[2J\x1b]0;title\x07a\rb\x00c\x7fd\x9be\u202ef\u2066g"
    expected = "\\x1b[2J\\x1b]0;title\\x07a\\x0db\\x00c\\x7fd\\x9be\\u202ef\\u2066g"
    assert printable(hostile) == printable(hostile, multiline=True) == expected
    assert printable("a\nb\tc") == "a\\x0ab\\x09c"
    assert printable("a\nb\tc", multiline=True) == "a\nb\tc"


def test_cut_keeps_short_text_and_says_how_long_a_cut_one_was() -> None:
    assert cut("x" * VIEW_FIELD_CHARS) == "x" * VIEW_FIELD_CHARS
    long = "y" * (VIEW_FIELD_CHARS + 1)
    assert cut(long) == "y" * VIEW_FIELD_CHARS + f"… (cut: {VIEW_FIELD_CHARS + 1} characters in all)"
    assert cut("abcdef", 3) == "abc… (cut: 6 characters in all)"


def test_single_line_views_escape_line_breaks_too() -> None:
    assert printable("ok \x1b[31mred\x07\n") == "ok \\x1b[31mred\\x07\\x0a"
