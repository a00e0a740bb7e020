"""Strict left-to-right argument scanning, with the options read from a usage text.

The options come from each command's usage text, written in docopt's language
(an ``Options:`` section of ``-f, --flag VALUE  description`` lines), so the help
a person reads and the flags accepted cannot drift apart. The usage text is read
here, by docopt's rules for option lines, without importing docopt: poll parses
its options at every call, and docopt (with re and typing) costs more than the
rest of poll's start-up (BENCHMARKS.md). The scan itself is ours too, because
callers depend on the old runner's exact rules, which docopt does not follow (it
accepts ``--flag=value`` and abbreviations, and docopt-ng even guesses at
misspelled options):

- left to right, the first bad argument wins;
- a flag's value is simply the next argument, even one starting with ``--``;
  only a missing or empty value is an error;
- ``--flag=value`` forms and abbreviations are unknown options.
"""

from __future__ import annotations

from mcp_core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # poll imports this module: no typing, collections or docopt at its start
    from collections.abc import Callable, Iterable

HELP = "help"


def _requires_a_value(flag: str) -> str:
    return f"{flag} requires a value"


def _requires_a_number(flag: str) -> str:
    return f"{flag} requires a numeric value"


def _must_be_positive(flag: str) -> str:
    return f"{flag} must be a positive number"


# A plain class: importing dataclasses costs ~15-20 ms, typing (NamedTuple) ~3 ms.
class Messages:
    """The exact error lines of one command."""

    __slots__ = ("unknown", "missing", "not_numeric", "not_positive")

    def __init__(
        self,
        unknown: Callable[[str], str],
        missing: Callable[[str], str] = _requires_a_value,
        not_numeric: Callable[[str], str] = _requires_a_number,
        not_positive: Callable[[str], str] = _must_be_positive,
    ) -> None:
        self.unknown = unknown
        self.missing = missing
        self.not_numeric = not_numeric
        self.not_positive = not_positive


class Parsed:
    def __init__(
        self,
        values: dict[str, str | bool | list[str]] | None = None,
        positionals: list[str] | None = None,
        help: bool = False,
    ) -> None:
        self.values: dict[str, str | bool | list[str]] = {} if values is None else values
        self.positionals: list[str] = [] if positionals is None else positionals
        self.help = help

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parsed):
            return NotImplemented
        return (self.values, self.positionals, self.help) == (other.values, other.positionals, other.help)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return f"Parsed(values={self.values!r}, positionals={self.positionals!r}, help={self.help!r})"

    def text(self, flag: str, default: str | None = None) -> str | None:
        value = self.values.get(flag)
        return value if isinstance(value, str) else default

    def flag(self, flag: str) -> bool:
        return self.values.get(flag) is True

    def many(self, flag: str) -> list[str]:
        value = self.values.get(flag)
        return list(value) if isinstance(value, list) else []


def options_of(usage: str) -> dict[str, int]:
    """``{'--flag': argcount}`` for every option the usage text describes.

    As ``docopt.parse_options`` reads the text after the usage section: a line
    whose first non-blank characters are ``-`` and a non-space (possibly after an
    ``Options:`` heading on the same line) describes an option; its names and
    argument come before the first double space, separated by spaces, commas or
    ``=``, and any word not starting with ``-`` there means the option takes a value.
    """
    table: dict[str, int] = {}
    for line in _after_usage_section(usage):
        text = line.lstrip(" \t")
        heading = text.lower().find("options:")
        if heading >= 0 and not text.startswith("-"):
            text = text[heading + len("options:"):].lstrip(" \t")
        if len(text) < 2 or text[0] != "-" or text[1].isspace():
            continue
        words = text.split("  ", 1)[0].replace(",", " ").replace("=", " ").split()
        argcount = 0 if all(word.startswith("-") for word in words) else 1
        for word in words:
            if word.startswith("-"):
                table[word] = argcount
    return table


def _after_usage_section(usage: str) -> list[str]:
    """The lines after the ``Usage:`` line and its indented continuation lines."""
    lines = usage.splitlines()
    position = next((n for n, line in enumerate(lines) if "usage:" in line.lower()), len(lines))
    position += 1
    while position < len(lines) and lines[position][:1] in (" ", "\t"):
        position += 1
    return lines[position:]


def finite_number(value: str) -> float | None:
    """The finite number ``value`` spells (surrounding blanks allowed), else None."""
    import math  # a shared library: loaded only when a number is given

    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_numeric(value: str) -> bool:
    """A finite, positive number (what a timeout or an interval can be)."""
    number = finite_number(value)
    return number is not None and number > 0


def scan(
    argv: Iterable[str],
    usage: str,
    messages: Messages,
    *,
    numeric: Iterable[str] = (),
    repeatable: Iterable[str] = (),
    positionals: int = 0,
) -> Parsed:
    """Scan ``argv`` against the options of ``usage``; raise UsageError on the first fault.

    ``-h``/``--help`` stops the scan where it appears (later arguments are not
    checked). ``positionals`` leading non-option words are accepted.
    """
    table = options_of(usage)
    numeric_flags = set(numeric)
    repeatable_flags = set(repeatable)
    parsed = Parsed()
    args = list(argv)
    position = 0
    while position < len(args):
        arg = args[position]
        if arg in ("-h", "--help") and arg in table:
            parsed.help = True
            return parsed
        if arg not in table:
            if len(parsed.positionals) < positionals and not arg.startswith("-"):
                parsed.positionals.append(arg)
                position += 1
                continue
            raise UsageError(messages.unknown(arg))
        if table[arg] == 0:
            parsed.values[arg] = True
            position += 1
            continue
        value = args[position + 1] if position + 1 < len(args) else None
        if arg in numeric_flags:
            number = None if value is None else finite_number(value)
            if number is None:
                raise UsageError(messages.not_numeric(arg))
            if number <= 0:
                raise UsageError(messages.not_positive(arg))
        elif not value:
            raise UsageError(messages.missing(arg))
        assert value is not None
        if arg in repeatable_flags:
            existing = parsed.values.setdefault(arg, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            parsed.values[arg] = value
        position += 2
    return parsed


def timeout_number(value: str) -> int | float:
    """A ``--timeout`` as stored: a number, integral values as ints (3600, not 3600.0)."""
    number = float(value.strip())
    return int(number) if number.is_integer() else number


def whole_number(flag: str, value: str) -> int:
    """A count flag's value: a whole number above 0 (``scan`` has checked that it is numeric)."""
    number = float(value)
    if not number.is_integer():
        raise UsageError(f"{flag} requires a whole number")
    return int(number)
