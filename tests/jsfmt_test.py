"""JSON text and timestamps compared with what Node.js itself prints.

Values travel to node as JavaScript source literals (not JSON), so NaN, -0,
big integers and lone surrogates reach it unchanged; each test runs one node
process for its whole batch.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import pytest
from conftest import node_eval
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_core import jsfmt
from mcp_core.jsfmt import (
    dumps_compact,
    dumps_pretty,
    iso_from_ms,
    iso_now,
    js_number,
    now_ms,
    parse_timestamp_ms,
    stamp,
)


def js_literal(value: Any) -> str:
    """JavaScript source for a Python JSON-like value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"({value})"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"({value!r})"  # repr is a valid JS literal: 1e-07, -0.0, 5e-324
    if isinstance(value, str):
        return json.dumps(value)  # \\uXXXX escapes, lone surrogates included
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{js_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def node_stringify(node: str, values: list[Any]) -> list[tuple[str, str]]:
    """``[JSON.stringify(v), JSON.stringify(v, null, 2)]`` for each value, from one node process."""
    array = "[" + ",".join(js_literal(v) for v in values) + "]"
    result = node_eval(node, f"{array}.map(v => [JSON.stringify(v), JSON.stringify(v, null, 2)])")
    assert isinstance(result, list)
    return [(compact, pretty) for compact, pretty in result]


def assert_same_as_node(node: str, values: list[Any]) -> None:
    for value, (compact, pretty) in zip(values, node_stringify(node, values), strict=True):
        assert dumps_compact(value) == compact, value
        assert dumps_pretty(value) == pretty + "\n", value


NUMBERS: list[Any] = [
    0, -0.0, 0.0, 1, -1, 12, 12.0, 100.0, 1.5, -2.75, 53.707, 31.3668, 0.1 + 0.2, 1 / 3, 2 / 3,
    1e21, 1e20, 123456789012345680000.0, 1e-7, 1e-6, 1.5e-6, 0.000001234, 1.234e-7, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 1e300, -1e-300, 123e-20,
    2**53, 2**53 + 1, -(2**53) - 1, 2**64, -(2**70), 10**21, 10**21 - 1, 999999999999999999999,
    1702.676, 34803047.123, float("nan"), float("inf"), float("-inf"),
]

STRINGS: list[Any] = [
    "", "plain", 'quote " and backslash \\', "\x00\x01\x07\x1f\x7f", "\b\f\n\r\t", "é漢字😀",
    "/ and </script>", "\u2028\u2029", "\ud800", "\udfff", "a\udc80b", "x\udbffy", "\ufeff\uffff",
    "\u0085 next line",
]

CONTAINERS: list[Any] = [
    [], {}, [[]], [{}], {"a": {}}, {"a": []}, {"a": [1, {"b": None}], "c": "d"}, [None, True, False],
    {"nested": {"deeper": {"deepest": [[], {}, [1, [2, [3]]]]}}}, {"": ""}, {"é": "ü", "key with space": 1},
    [float("nan"), -0.0, 1e21], {"n": float("inf")},
]


def test_numbers_match_node(node: str) -> None:
    assert_same_as_node(node, NUMBERS)


def test_strings_match_node(node: str) -> None:
    assert_same_as_node(node, STRINGS)


def test_containers_and_pretty_form_match_node(node: str) -> None:
    assert_same_as_node(node, CONTAINERS)


def test_pretty_form_by_hand() -> None:
    value = {"a": 1, "b": [True, None, {}], "c": {"d": "é/"}, "e": []}
    assert dumps_pretty(value) == (
        '{\n  "a": 1,\n  "b": [\n    true,\n    null,\n    {}\n  ],\n  "c": {\n    "d": "é/"\n  },\n  "e": []\n}\n'
    )
    assert dumps_compact(value) == '{"a":1,"b":[true,null,{}],"c":{"d":"é/"},"e":[]}'
    assert dumps_compact((1, 2)) == "[1,2]"


def test_numbers_by_hand() -> None:
    assert [js_number(v) for v in (0.0, -0.0, 1e21, 1e-7, 1e-6, 53.707, float("nan"), float("-inf"))] == [
        "0", "0", "1e+21", "1e-7", "0.000001", "53.707", "null", "null",
    ]
    assert dumps_compact(2**53) == "9007199254740992"
    assert dumps_compact(2**64) == "18446744073709552000"
    assert dumps_compact(10**21) == "1e+21"


def test_unserialisable_values_raise_type_error() -> None:
    with pytest.raises(TypeError):
        dumps_compact({"a": object()})
    with pytest.raises(TypeError):
        dumps_pretty({1, 2})


# --- properties against node ---------------------------------------------------------------

LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\udc80"]
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")

# A Python string may hold a high and a low surrogate side by side; JavaScript
# reads that as one character. The runner never makes such strings (JSON
# parsing joins pairs, surrogateescape makes only low ones), so they are left out.
texts = st.lists(st.one_of(st.characters(), st.sampled_from(LONE_SURROGATES)), max_size=12).map(
    lambda chars: _PAIR.sub(lambda pair: pair[0][0] + "x" + pair[0][1], "".join(chars))
)
# JavaScript puts integer-like keys first and treats "__proto__" specially.
keys = texts.map(lambda k: "k" + k if k.isdigit() or k == "__proto__" else k)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=8,
)
# Few examples of many values each: every example costs one node process.
BATCH = settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@BATCH
@given(values=st.lists(json_values, min_size=30, max_size=60))
def test_property_python_and_javascript_agree(node: str, values: list[Any]) -> None:
    assert_same_as_node(node, values)


@BATCH
@given(values=st.lists(st.floats() | st.integers(min_value=-(2**80), max_value=2**80), min_size=100, max_size=200))
def test_property_numbers_agree(node: str, values: list[Any]) -> None:
    assert_same_as_node(node, values)


# --- the kept text of a list's objects (every manifest save) --------------------------------


class Text(str):
    pass


class Number(int):
    pass


# Pairs of entries that Python calls equal (or near it) and that print differently:
# a kept text found by equality alone would print the first for the second.
LOOK_ALIKE_ENTRIES: list[Any] = [
    {"a": 1, "b": 2}, {"a": True, "b": 2}, {"a": 1.0, "b": 2}, {"b": 2, "a": 1}, {"a": 0}, {"a": False},
    {"a": -0.0}, {"a": 0.0}, {"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, {"a": [1, 2]}, {"a": (1, 2)},
    {"a": "\ud800"}, {"a": "\udc80"}, {"a": "x"}, {"a": Text("x")}, {"a": Number(3)}, {"a": 3},
    {"a": 2**53 + 1}, {"a": float(2**53 + 1)}, {"a": float("nan")}, {"a": None}, {"a": {}}, {"a": []},
    {Text("a"): 1}, {"é": "ü"}, {}, {"a": {"b": [{"c": True}]}}, {"a": {"b": [{"c": 1}]}},
]


def test_kept_entries_print_as_node_prints_them(node: str) -> None:
    documents = [{"commands": [entry, entry], "more": [entry], "n": 1} for entry in LOOK_ALIKE_ENTRIES]
    documents += [[entry, [entry]] for entry in LOOK_ALIKE_ENTRIES]
    for _ in range(2):  # the second time, from the kept texts
        assert_same_as_node(node, documents)
        assert_same_as_node(node, list(reversed(documents)))


def test_an_entry_changed_in_place_is_printed_anew() -> None:
    entry: dict[str, Any] = {"index": 1, "status": "running", "exit_code": None}
    manifest = {"commands": [entry]}
    assert '"status": "running"' in dumps_pretty(manifest)
    entry["status"] = "succeeded"
    entry["exit_code"] = False
    text = dumps_pretty(manifest)
    assert '"status": "succeeded"' in text and '"exit_code": false' in text
    entry["exit_code"] = 0
    assert '"exit_code": 0' in dumps_pretty(manifest)


def test_kept_texts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsfmt, "_ENTRY_TEXTS", {})
    monkeypatch.setattr(jsfmt, "_entry_texts_size", 0)
    monkeypatch.setattr(jsfmt, "_ENTRY_TEXTS_MAX_SIZE", 100_000)
    too_large = {"c": [{"filler": "y" * 100_000}]}
    assert dumps_pretty(too_large) == dumps_pretty(too_large)
    assert jsfmt._ENTRY_TEXTS == {}  # never kept
    summary = "x" * 1000
    for number in range(500):
        text = dumps_pretty({"c": [{"n": number, "summary": summary}]})
        assert text == f'{{\n  "c": [\n    {{\n      "n": {number},\n      "summary": "{summary}"\n    }}\n  ]\n}}\n'
        kept = sum(len(key) + len(text) for key, text in jsfmt._ENTRY_TEXTS.items())
        assert 0 < kept == jsfmt._entry_texts_size <= 100_000


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.dictionaries(keys, json_values, max_size=4), max_size=6), other=json_values)
def test_property_kept_and_fresh_texts_agree(entries: list[Any], other: Any) -> None:
    document = {"commands": entries, "other": other, "nested": {"commands": entries}}
    first = dumps_pretty(document)
    kept = dumps_pretty(document)
    jsfmt._ENTRY_TEXTS.clear()
    jsfmt._entry_texts_size = 0
    fresh = dumps_pretty(document)
    assert first == kept == fresh


# --- timestamps ------------------------------------------------------------------------------

EPOCH_MS = [
    0, 1, 999, 1000, -1, -999, -1000, -1001, 1760811976689, 1760855408429, 951782400000, 951868799999,
    4102444800000, 253402300799999, -62135596800000, 1.5, -1.5, 1760811976689.9,
]


def test_iso_from_ms_matches_to_iso_string(node: str) -> None:
    expected = node_eval(node, "[" + ",".join(map(str, EPOCH_MS)) + "].map(ms => new Date(ms).toISOString())")
    assert [iso_from_ms(ms) for ms in EPOCH_MS] == expected  # type: ignore[arg-type]


@BATCH
@given(values=st.lists(st.integers(min_value=-62135596800000, max_value=253402300799999), min_size=100, max_size=200))
def test_property_iso_from_ms_agrees(node: str, values: list[int]) -> None:
    expected = node_eval(node, "[" + ",".join(map(str, values)) + "].map(ms => new Date(ms).toISOString())")
    assert [iso_from_ms(ms) for ms in values] == expected


def test_now_and_stamp() -> None:
    before = time.time_ns() // 1_000_000
    text = iso_now()
    current = now_ms()
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert before <= current <= after
    parsed = parse_timestamp_ms(text)
    assert parsed is not None and before <= parsed <= after
    assert stamp("2025-10-18T18:26:16.688Z") == "2025-10-18T18-26-16-688Z"


ISO_STRINGS = [
    "2025-10-18T18:26:16.689Z",
    "2025-10-18T18:26:16Z",
    "2025-10-18T18:26:16.689+02:00",
    "2025-10-18T18:26:16.689-05:30",
    "2025-10-18",
    "2000-02-29T23:59:59.999Z",
    "1969-12-31T23:59:59.999Z",
]


def test_parse_iso_matches_date_parse(node: str) -> None:
    expected = node_eval(node, json.dumps(ISO_STRINGS) + ".map(s => Date.parse(s))")
    assert [parse_timestamp_ms(s) for s in ISO_STRINGS] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-18T13-37-27Z", 1760794647000),  # legacy dash stamps (Date.parse of the ':' form)
        ("2025-10-18T16-21-54-804Z", 1760804514804),
        ("2025-10-18T18-26-16-688Z", 1760811976688),
        (" 2025-10-18T18:26:16.689Z\n", 1760811976689),
        ("2025-10-18T18:26:16.689", 1760811976689),  # no zone: taken as UTC
        ("not a date", None),
        ("", None),
        ("   ", None),
        ("2025-13-45T99:99:99Z", None),
        ("2025-10-18T25-99-99Z", None),
        ("{}", None),
        ("9999999999-01-01", None),
        ("\x00", None),
    ],
)
def test_parse_timestamp_ms_table(text: str, expected: float | None) -> None:
    assert parse_timestamp_ms(text) == expected


@pytest.mark.parametrize("value", [None, 12, 1.5, True, [], {}, ["2025-10-18T18:26:16.689Z"], b"2025-10-18"])
def test_parse_timestamp_ms_non_strings_are_unknown(value: Any) -> None:
    assert parse_timestamp_ms(value) is None


@pytest.mark.filterwarnings("error")  # nor warns: a warning would print a run's text on stderr
@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(), st.text(alphabet="0123456789-:TZ.+ "), scalars, st.binary()))
def test_parse_timestamp_ms_never_raises(value: Any) -> None:
    result = parse_timestamp_ms(value)
    assert result is None or (isinstance(result, float) and math.isfinite(result))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("text", ["2020-01-01 10:00 ZT", "2020-01-01T10:00:00 XYZ", "10:00 QQ 2020-01-01"])
def test_an_unknown_time_zone_name_is_no_timestamp(text: str) -> None:
    """dateutil would ignore the name (and warn); Date.parse gives NaN."""
    assert parse_timestamp_ms(text) is None


@settings(max_examples=300, deadline=None)
@given(epoch_ms=st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_the_runners_own_timestamps_read_as_datetime_reads_them(epoch_ms: int) -> None:
    # parse_timestamp_ms reads the shape the runner writes by arithmetic, without datetime
    import datetime as dt

    text = iso_from_ms(epoch_ms)
    by_datetime = (dt.datetime.fromisoformat(text) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(
        milliseconds=1
    )
    assert parse_timestamp_ms(text) == by_datetime == epoch_ms


@pytest.mark.parametrize("text", ["2025-02-29T00:00:00.000Z", "2025-13-01T00:00:00.000Z"])
def test_impossible_dates_in_the_runners_shape_are_unknown(text: str) -> None:
    assert parse_timestamp_ms(text) is None
