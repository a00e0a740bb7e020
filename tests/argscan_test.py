"""The argument rules of docs/interface.md section 2, on a usage text shaped like start's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.argscan import Messages, Parsed, is_numeric, options_of, scan
from mcp_core.errors import UsageError

USAGE = """\
Usage: prog [--command <cmd>]... [--timeout <s>] [--format text|json] [--watch]

Options:
  --command CMD        A shell command (repeatable).
  --approval-policy V  The approval policy.
  --timeout S          Seconds.
  --format FORMAT      text or json.
  --watch              Keep going.
  -h --help            Show this help.
"""
MESSAGES = Messages(unknown=lambda arg: f"Unknown option for prog: {arg}")


def run(*argv: str, positionals: int = 0) -> Parsed:
    return scan(list(argv), USAGE, MESSAGES, numeric=["--timeout"], repeatable=["--command"], positionals=positionals)


def error_of(*argv: str, positionals: int = 0) -> str:
    with pytest.raises(UsageError) as caught:
        run(*argv, positionals=positionals)
    assert caught.value.exit_code == 1
    return caught.value.message


def test_options_come_from_the_usage_text() -> None:
    assert options_of(USAGE) == {
        "--command": 1, "--approval-policy": 1, "--timeout": 1, "--format": 1, "--watch": 0, "-h": 0, "--help": 0,
    }


def test_values_flags_and_repeats() -> None:
    parsed = run("--command", "npm run build", "--watch", "--command", "ls", "--format", "json", "--format", "text")
    assert parsed.many("--command") == ["npm run build", "ls"]  # repeatable, in order
    assert parsed.flag("--watch") is True
    assert parsed.text("--format") == "text"  # the last one counts
    assert parsed.text("--approval-policy", "never") == "never"
    assert parsed.help is False


def test_a_value_is_the_next_argument_even_when_it_starts_with_dashes() -> None:
    parsed = run("--command", "--format", "--approval-policy", "--watch", "--command", "-h")
    assert parsed.many("--command") == ["--format", "-h"]
    assert parsed.text("--approval-policy") == "--watch"
    assert parsed.flag("--watch") is False and parsed.help is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--command"], "--command requires a value"),
        (["--command", ""], "--command requires a value"),
        (["--approval-policy"], "--approval-policy requires a value"),
        (["--format", ""], "--format requires a value"),
        (["--timeout"], "--timeout requires a numeric value"),
        (["--timeout", "abc"], "--timeout requires a numeric value"),
        (["--timeout", ""], "--timeout requires a numeric value"),
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--timeout", "-3"], "--timeout must be a positive number"),
        (["--timeout", "nan"], "--timeout requires a numeric value"),
        (["--timeout", "inf"], "--timeout requires a numeric value"),
        (["--timeout", "--watch"], "--timeout requires a numeric value"),
        (["--bogus"], "Unknown option for prog: --bogus"),
        (["--format=json"], "Unknown option for prog: --format=json"),
        (["--form", "json"], "Unknown option for prog: --form"),
        (["--comm", "ls"], "Unknown option for prog: --comm"),
        (["--wat"], "Unknown option for prog: --wat"),
        (["-c", "ls"], "Unknown option for prog: -c"),
        (["--"], "Unknown option for prog: --"),
        (["word"], "Unknown option for prog: word"),
        # left to right, the first bad argument wins
        (["--bogus", "--command"], "Unknown option for prog: --bogus"),
        (["--command", "", "--bogus"], "--command requires a value"),
        (["--timeout", "x", "--bogus"], "--timeout requires a numeric value"),
        (["--watch", "--other", "--timeout", "x"], "Unknown option for prog: --other"),
        (["--bogus", "-h"], "Unknown option for prog: --bogus"),
    ],
)
def test_errors(argv: list[str], message: str) -> None:
    assert error_of(*argv) == message


@pytest.mark.parametrize("value", ["1", "10", "1.5", " 2 ", "1e3", "0.001"])
def test_numeric_values(value: str) -> None:
    assert run("--timeout", value).text("--timeout") == value
    assert is_numeric(value)


def test_help_acts_where_it_appears() -> None:
    assert run("-h", "--bogus").help is True
    assert run("--watch", "--help", "--timeout", "x").help is True
    assert run("--command", "-h").help is False  # a value, not help


def test_positionals() -> None:
    parsed = run("run-1", "--watch", positionals=1)
    assert parsed.positionals == ["run-1"] and parsed.flag("--watch")
    assert error_of("run-1", "run-2", positionals=1) == "Unknown option for prog: run-2"
    assert error_of("-x", positionals=1) == "Unknown option for prog: -x"


WORDS = ["--command", "--approval-policy", "--timeout", "--format", "--watch", "-h", "--help", "--bogus",
         "--format=json", "--comm", "", "5", "-1", "abc", "json", "--", "-"]


@settings(max_examples=500, deadline=None)
@given(argv=st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=10), positionals=st.integers(0, 2))
def test_property_scan_raises_only_usage_errors(argv: list[str], positionals: int) -> None:
    try:
        parsed = run(*argv, positionals=positionals)
    except UsageError as exc:
        assert exc.message and exc.exit_code == 1
        return
    for value in parsed.values.values():
        assert value is True or value  # no empty values
    assert len(parsed.positionals) <= positionals



def test_options_are_read_as_docopt_reads_them() -> None:
    # argscan reads the usage texts without importing docopt (poll's start-up); docopt is the reference
    import importlib

    from docopt import parse_docstring_sections, parse_options

    names = ["cancel", "diagnostics", "list", "metrics", "migrate", "poll", "prune", "report", "resume", "start"]
    usages = [USAGE] + [importlib.import_module(f"mcp_core.commands.{name}").USAGE for name in names]
    for usage in usages:
        expected = {}
        for option in parse_options(parse_docstring_sections(usage).after_usage):
            for flag in (option.short, option.longer):
                if flag:
                    expected[flag] = option.argcount
        assert options_of(usage) == expected, usage.splitlines()[0]
