"""Text from runs made safe for a person's terminal (and bounded in size).

Whatever a run directory holds — a command's output in a summary, a hand-edited
manifest — is shown by the text views (poll, list, prune, the metrics table,
diagnostics, the report page) through ``printable``: control characters
(C0 but newline and tab where lines are kept, DEL, C1) and the bidirectional
overrides that reorder what is shown become visible escapes (``\\x1b``,
``\\u202e``), so no escape sequence can clear the screen, move the cursor, set
the title or hide text. Ordinary text passes unchanged. JSON output needs
none of this: the encoder escapes control characters itself.

No imports: poll's fast path uses it too.
"""

from __future__ import annotations


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_BIDI = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), *_BIDI]
_SINGLE_LINE = {code: _escape(code) for code in _UNSAFE}
_MULTI_LINE = {code: text for code, text in _SINGLE_LINE.items() if code not in (0x09, 0x0A)}

# How much of one field a view shows (a summary, a command, a timestamp that is
# not one); a longer field ends with a note of its full length.
VIEW_FIELD_CHARS = 64 * 1024


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every unsafe character escaped; ``multiline`` keeps newlines and tabs."""
    return text.translate(_MULTI_LINE if multiline else _SINGLE_LINE)


def cut(text: str, limit: int = VIEW_FIELD_CHARS) -> str:
    """``text``, or its first ``limit`` characters and a note of its full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (cut: {len(text)} characters in all)"
