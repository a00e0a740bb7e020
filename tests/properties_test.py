"""Property-based tests (hypothesis): every CLI's argument rules, through
``mcp_core.argscan`` with each command's own USAGE, and manifest round trips
(``jsfmt.dumps_pretty`` -> ``json.loads`` and the locked save path).

The argument rules (docs/interface.md section 2) as properties, for every command:
a flag's value is simply the next argument, whatever it looks like; the first
bad argument wins whatever follows it; ``-h`` acts where it appears;
``--flag=value`` and abbreviations are unknown options; nothing but a
UsageError ever comes out.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mcp_core import manifest as manifest_mod
from mcp_core import run_record, store
from mcp_core.argscan import Messages, is_numeric, options_of, scan
from mcp_core.commands import cancel, diagnostics, metrics, migrate, poll, prune, report, resume, start
from mcp_core.commands import list as list_command
from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import dumps_compact, dumps_pretty, iso_now, js_number, parse_timestamp_ms
from mcp_core.paths import locate


@dataclass(frozen=True)
class Cli:
    name: str
    usage: str
    messages: Messages
    numeric: tuple[str, ...] = ()
    repeatable: tuple[str, ...] = ()

    def scan(self, argv: list[str]) -> Any:
        return scan(argv, self.usage, self.messages, numeric=self.numeric, repeatable=self.repeatable)

    @property
    def options(self) -> dict[str, int]:
        return {k: v for k, v in options_of(self.usage).items() if k not in ("-h", "--help")}


def _messages(module: ModuleType) -> Messages:
    for name in ("MESSAGES", "_MESSAGES"):
        if hasattr(module, name):
            return getattr(module, name)  # type: ignore[no-any-return]
    return module._messages()  # type: ignore[no-any-return]


# Each command as it calls argscan (poll and cancel scan what follows the run id).
CLIS = [
    Cli("start", start.USAGE, _messages(start), ("--timeout",), ("--command",)),
    Cli("resume", resume.USAGE, _messages(resume)),
    Cli("poll", poll.USAGE, _messages(poll), ("--interval",)),
    Cli("cancel", cancel.USAGE, _messages(cancel), ("--wait",)),
    Cli("list", list_command.USAGE, _messages(list_command), ("--limit",)),
    Cli("metrics", metrics.USAGE, _messages(metrics)),
    Cli("migrate", migrate.USAGE, _messages(migrate)),
    Cli("prune", prune.USAGE, _messages(prune)),
    Cli("report", report.USAGE, _messages(report), ("--limit",)),
    Cli("diagnostics", diagnostics.USAGE, _messages(diagnostics), ("--timeout",)),
]
CLI_IDS = [cli.name for cli in CLIS]

# Values a flag may take: anything non-empty, including what looks like a flag.
ANY_VALUE = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["--format", "-h", "--help", "--bogus", "--", "-", "--command=x", " "]),
)
NUMBERS = st.one_of(
    st.integers(1, 10**6).map(str),
    st.floats(1e-6, 1e6).map(repr),
    st.sampled_from(["1", "2.5", " 3 ", "1e3", "0.001"]),
)


def _value_for(cli: Cli, option: str) -> st.SearchStrategy[str]:
    return NUMBERS if option in cli.numeric else ANY_VALUE


@st.composite
def valid_argv(draw: st.DrawFn, cli: Cli) -> tuple[list[str], dict[str, Any]]:
    """A valid command line and the values it must give (last wins, repeats kept)."""
    argv: list[str] = []
    expected: dict[str, Any] = {}
    for option in draw(st.lists(st.sampled_from(sorted(cli.options)), max_size=6)):
        if cli.options[option] == 0:
            argv.append(option)
            expected[option] = True
            continue
        value = draw(_value_for(cli, option))
        argv += [option, value]
        if option in cli.repeatable:
            expected.setdefault(option, []).append(value)
        else:
            expected[option] = value
    return argv, expected


def _unknown(cli: Cli) -> st.SearchStrategy[str]:
    """Arguments that are no option of ``cli``: strays, --flag=value, abbreviations."""
    longs = [o for o in cli.options if o.startswith("--")]
    forms = [f"{o}={v}" for o in longs for v in ("x", "")] + [o[:-1] for o in longs if o[:-1] not in cli.options]
    strays = st.text(max_size=10).filter(lambda a: a not in cli.options and a not in ("-h", "--help"))
    return st.one_of(st.sampled_from(forms + ["--bogus", "-x", "--", "-"]), strays)


SUFFIX = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["-h", "--help", "--bogus", "--format", ""])),
                  max_size=5)


@pytest.mark.parametrize("cli", CLIS, ids=CLI_IDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_value_is_simply_the_next_argument(cli: Cli, data: st.DataObject) -> None:
    argv, expected = data.draw(valid_argv(cli))
    parsed = cli.scan(argv)
    assert parsed.values == expected and parsed.help is False


@pytest.mark.parametrize("cli", CLIS, ids=CLI_IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_first_bad_argument_wins(cli: Cli, data: st.DataObject) -> None:
    prefix, _ = data.draw(valid_argv(cli))
    bad = data.draw(_unknown(cli))
    suffix = data.draw(SUFFIX)
    with pytest.raises(UsageError) as refused:
        cli.scan([*prefix, bad, *suffix])
    assert refused.value.message == cli.messages.unknown(bad)
    assert refused.value.exit_code == 1


@pytest.mark.parametrize("cli", CLIS, ids=CLI_IDS)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_a_missing_or_empty_value_is_the_error(cli: Cli, data: st.DataObject) -> None:
    takes_value = sorted(o for o, count in cli.options.items() if count)
    assume(takes_value)
    prefix, _ = data.draw(valid_argv(cli))
    option = data.draw(st.sampled_from(takes_value))
    tail = data.draw(st.sampled_from([[], [""]])) + (data.draw(SUFFIX) if data.draw(st.booleans()) else [])
    if tail and tail[0] != "":
        tail = []
    with pytest.raises(UsageError) as refused:
        cli.scan([*prefix, option, *tail])
    wanted = cli.messages.not_numeric(option) if option in cli.numeric else cli.messages.missing(option)
    assert refused.value.message == wanted


@pytest.mark.parametrize("cli", CLIS, ids=CLI_IDS)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_help_acts_where_it_appears(cli: Cli, data: st.DataObject) -> None:
    prefix, _ = data.draw(valid_argv(cli))
    flag = data.draw(st.sampled_from(["-h", "--help"]))
    assert cli.scan([*prefix, flag, *data.draw(SUFFIX)]).help is True


WORDS = st.sampled_from(
    ["-h", "--help", "--format", "--timeout", "--limit", "--wait", "--interval", "--command", "--run-id", "--task",
     "--dry-run", "--watch", "1", "0", "-1", "nan", "inf", "", "--bogus", "--format=json"]
)


@pytest.mark.parametrize("cli", CLIS, ids=CLI_IDS)
@settings(max_examples=30, deadline=None)
@given(argv=st.lists(st.one_of(st.text(max_size=10), WORDS), max_size=8))
def test_nothing_but_usage_errors(cli: Cli, argv: list[str]) -> None:
    try:
        parsed = cli.scan(argv)
    except UsageError as exc:
        assert exc.message and exc.exit_code == 1
        return
    for option, value in parsed.values.items():
        assert option in cli.options
        assert value is True or value  # never an empty value
        if option in cli.numeric:
            assert is_numeric(value)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(run_id=st.text(min_size=1, max_size=20).filter(lambda t: t not in ("-h", "--help")), data=st.data())
def test_poll_takes_its_first_argument_as_the_run_id(run_id: str, data: st.DataObject) -> None:
    """Even one that looks like a flag (`poll --watch` asks for a run named --watch)."""
    cli = next(c for c in CLIS if c.name == "poll")
    rest, expected = data.draw(valid_argv(cli))
    try:
        options = poll.parse_args([run_id, *rest])
    except UsageError as exc:  # only the format value is checked after the scan
        assert exc.message.startswith("Unsupported format: ")
        return
    except RunnerError as exc:  # an invalid run id: the one other refusal
        assert exc.message.startswith("Invalid run id")
        return
    assert options is not None and options.run_id == run_id
    assert options.watch is (expected.get("--watch") is True)


# --- JSON and manifest round trips ------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)  # lone surrogates too
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=25,
)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON, key order included (2.0 and 2 are one JSON number)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(b, (int, float)) and not isinstance(b, bool) and float(a) == float(b)
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_pretty_and_compact_json_read_back_the_same(value: Any) -> None:
    pretty = dumps_pretty(value)
    assert pretty.endswith("\n") and not pretty.endswith("\n\n")
    assert same_json(json.loads(pretty), value)
    compact = dumps_compact(value)
    assert "\n" not in compact
    assert same_json(json.loads(compact), value)
    pretty.encode("utf-8")  # writable as UTF-8: lone surrogates are escaped


@settings(max_examples=200, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_read_back_exactly(number: float) -> None:
    assert float(json.loads(js_number(number))) == number


@given(number=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_numbers_json_cannot_hold_become_null(number: float) -> None:
    assert json.loads(dumps_compact({"n": number})) == {"n": None}


MANIFEST_KEY = st.one_of(st.sampled_from(["summary", "status_detail", "commands", "run_id", "resume_events"]), ANY_TEXT)


@settings(max_examples=40, deadline=None)
@given(
    commands=st.lists(ANY_TEXT.filter(bool), min_size=1, max_size=4),
    key=MANIFEST_KEY,
    value=JSON_VALUES,
)
def test_a_manifest_saved_reads_back_as_saved(commands: list[str], key: str, value: Any) -> None:
    """new_manifest -> write_json -> run_record.update(set key) -> read: every key in its
    place, a new key at the end, the value as set, updated_at set, the file exactly
    the pretty form of what it holds."""
    with tempfile.TemporaryDirectory() as tmp:
        loc = locate({"MCP_RUNNER_REPO_ROOT": tmp})
        run_id = "2026-01-01T00-00-00-000Z-1"
        run_dir = loc.run_dir(run_id)
        run_dir.mkdir(parents=True)
        path = run_dir / "manifest.json"
        created = manifest_mod.new_manifest(
            loc, run_id, commands, approval_policy="never", timeout_seconds=60, now=iso_now(), resume_token="t"
        )
        store.write_json(path, created)
        assert same_json(store.read_json(path), created)
        assert [c["command"] for c in store.read_json(path)["commands"]] == commands

        def change(record: dict[str, Any]) -> None:
            record[key] = value

        saved = run_record.update(path, change)
        on_disk = store.read_json(path)
        assert same_json(on_disk, saved)
        expected_keys = list(created) + ([key] if key not in created else [])
        assert list(on_disk) == expected_keys
        assert same_json(on_disk[key], value) if key != "updated_at" else True
        assert parse_timestamp_ms(on_disk["updated_at"]) is not None
        assert Path(path).read_text(encoding="utf-8") == dumps_pretty(saved)
        assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
