"""mcp_core.report: the static HTML page, checked by parsing it (html.parser)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import snapshot
from gen_runs import generate

from mcp_core import report
from mcp_core.jsfmt import now_ms
from mcp_core.paths import locate
from mcp_core.runs_index import RunView, read_task_runs, run_id_ms


class Page(HTMLParser):
    """What the tests look at: tags, links, table rows, text, element ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.rows: list[dict[str, object]] = []  # runs table rows: id, cells (text), hrefs
        self.text: list[str] = []
        self._row: dict[str, object] | None = None
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "a" and attributes.get("href") is not None:
            self.hrefs.append(str(attributes["href"]))
            if self._row is not None:
                self._row["hrefs"].append(str(attributes["href"]))  # type: ignore[attr-defined]
        if tag == "tr" and str(attributes.get("id", "")).startswith("run-"):
            self._row = {"id": attributes["id"], "cells": [], "hrefs": []}
        if tag == "td" and self._row is not None:
            self._cell = []
        if self._cell is not None and tag in ("div", "br", "li", "ol", "span"):
            self._cell.append(" ")  # what a browser shows apart stays apart in the cell's text
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))  # type: ignore[attr-defined]
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if not self._in_style:
            self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def render(repo: Path, limit: int = report.DEFAULT_TABLE_LIMIT) -> tuple[str, Path]:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    index = read_task_runs(loc)
    return report.build_report(loc, index, now_ms(), limit), report.report_path(loc)


def assert_self_contained(text: str, page: Page) -> None:
    assert not any(tag == "script" for tag, _ in page.tags)
    assert not any(tag in ("img", "iframe", "object", "embed", "link", "base", "form") for tag, _ in page.tags)
    assert not re.search(r"https?://", text, re.IGNORECASE)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    meta = [attrs for tag, attrs in page.tags if tag == "meta" and attrs.get("http-equiv")]
    assert meta and "default-src 'none'" in str(meta[0]["content"])


def assert_links_resolve(page: Page, report_file: Path) -> None:
    for href in page.hrefs:
        if href.startswith("#"):
            assert href[1:] in page.ids, href
            continue
        parts = urlsplit(href)
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", ""), href
        target = report_file.parent / unquote(parts.path)
        assert target.is_file(), href
        assert not target.is_symlink()


def test_fixture_report(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo)
    text, path = render(fixture_repo)
    assert snapshot(fixture_repo) == before  # building reads only
    page = parse(text)
    assert_self_contained(text, page)
    assert_links_resolve(page, path)
    assert [run_id(row) for row in page.rows] == [
        "2025-10-19T06-54-01-535Z-diagnostics",
        "2025-10-19T06-30-08-316Z-55446",
        "2025-10-18T18-31-38-655Z-41397",
        "2025-10-18T18-30-06-976Z-41083",
        "2025-10-18T18-26-16-688Z-39463",
        "demo-legacy",
    ]
    succeeded = page.rows[4]
    assert succeeded["cells"][1] == "succeeded"  # type: ignore[index]
    assert succeeded["cells"][2].startswith("4/4 passed succeeded npm run build exit 0")  # type: ignore[index]
    # Started; ended the same day, with the duration; no heartbeat age for a run that has ended.
    assert succeeded["cells"][3] == "2025-10-18 18:26:16 ended 18:27:10 (53.7s)"  # type: ignore[index]
    assert succeeded["hrefs"] == [  # type: ignore[index]
        "mcp/2025-10-18T18-26-16-688Z-39463/manifest.json",
        "mcp/2025-10-18T18-26-16-688Z-39463/runner.log",
        "mcp/2025-10-18T18-26-16-688Z-39463/poll.json",
        "mcp/2025-10-18T18-26-16-688Z-39463/01-npm-run-build.json",
        "mcp/2025-10-18T18-26-16-688Z-39463/02-npm-run-lint.json",
        "mcp/2025-10-18T18-26-16-688Z-39463/03-npm-run-test.json",
        "mcp/2025-10-18T18-26-16-688Z-39463/04-bash-scripts-spec-guard-sh-dry-run.json",
    ]
    failed = page.rows[1]
    assert "mcp/2025-10-19T06-30-08-316Z-55446/errors/01-bash-lc-exit-2.json" in failed["hrefs"]  # type: ignore[operator]
    assert "#failure-2" in failed["hrefs"]  # type: ignore[operator]
    words = " ".join(" ".join(page.text).split())
    assert "Failed runs" in words
    assert "reason command-failed command bash -lc 'exit 2'" in words
    assert "exit code 2 summary Command exited with status 2" in words
    # From the manifests (metrics.json lacks the migrated demo-legacy run): 2 of 6 succeeded.
    assert "6 runs 2 succeeded 4 failed 0 cancelled 0 not ended 0 stale 33% success rate" in words
    assert ".runs/0001/metrics.json" in words and ".runs/0001/metrics-summary.json" in words
    assert sum(1 for tag, _ in page.tags if tag == "svg") == 3
    assert "heartbeat" not in " ".join(str(row["cells"]) for row in page.rows)  # every run has ended


def test_generated_report_links_escaping_and_failures(repo: Path) -> None:
    generated = generate(repo, 40, seed=7, hostile=True, spacing_seconds=2400)
    text, path = render(repo)
    page = parse(text)
    assert_self_contained(text, page)
    assert_links_resolve(page, path)
    assert [run_id(row) for row in page.rows] == [g.run_id for g in reversed(generated)]
    # The hostile summary is text on the page, never markup.
    assert "<script>" not in text and "<img" not in text
    assert html_text_contains(page, '<script>alert("x")</script> & <img src=x onerror=alert(1)> "quoted" \\x1b[31mred')
    assert "\x1b" not in text
    # Every failed run has its error block, and every error artifact is linked.
    failed = [g for g in generated if g.status == "failed"]
    assert failed
    for run in failed:
        for relative in run.files:
            if "/errors/" in relative:
                href = os.path.relpath(repo / relative, path.parent)
                assert href in page.hrefs
    number_of_blocks = sum(1 for i in page.ids if i.startswith("failure-"))
    assert number_of_blocks == len(failed)
    # The STALE run and the live one.
    stale_row = page.rows[1]
    assert stale_row["cells"][1] == "in_progress STALE"  # type: ignore[index]
    assert page.rows[0]["cells"][1] == "in_progress"  # type: ignore[index]
    # Artifacts: only existing files, the resume token never.
    assert not any(".resume-token" in href or ".heartbeat" in href for href in page.hrefs)
    manifest_links = [h for h in page.hrefs if h.endswith("/manifest.json")]
    assert len(manifest_links) == 40


def run_id(row: dict[str, object]) -> str:
    """The run id of a table row: the first word of its first cell (its files follow)."""
    return str(row["cells"][0]).split()[0]  # type: ignore[index]


def html_text_contains(page: Page, needle: str) -> bool:
    return any(needle in chunk for chunk in page.text)


def test_table_limit_keeps_figures_for_all_runs(repo: Path) -> None:
    generate(repo, 30, seed=4)
    text, _ = render(repo, limit=5)
    page = parse(text)
    assert len(page.rows) == 5
    words = " ".join(" ".join(page.text).split())
    assert "The 5 newest of 30 runs" in words
    assert "30 runs" in words


def test_untrusted_run_ids_are_quoted_in_links(repo: Path) -> None:
    run_id = "2025-01-01T00-00-00-000Z-1#?%3A<u>'\""
    run_dir = repo / ".runs" / "0001" / "mcp" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(
        json.dumps({"status": "failed", "started_at": "2025-01-01T00:00:00.000Z", "summary": "</td></tr><marquee>x"}),
        encoding="utf-8",
    )
    (run_dir / "runner.log").write_text("", encoding="utf-8")
    text, path = render(repo)
    page = parse(text)
    assert_self_contained(text, page)
    assert_links_resolve(page, path)
    assert page.rows[0]["cells"][0].startswith(run_id)  # type: ignore[index]
    assert "</td></tr><marquee>x" in page.rows[0]["cells"][4]  # type: ignore[index]
    assert "<marquee" not in text and "<u>" not in text
    assert not any(tag in ("marquee", "u") for tag, _ in page.tags)


def test_symlinked_files_are_not_linked(repo: Path, tmp_path: Path) -> None:
    generated = generate(repo, 2, seed=1)
    run_dir = repo / ".runs" / "0001" / "mcp" / generated[0].run_id
    secret = tmp_path / "secret.txt"
    secret.write_text("secret", encoding="utf-8")
    os.symlink(secret, run_dir / "09-leak.json")
    (run_dir / "errors").mkdir(exist_ok=True)
    os.symlink(secret, run_dir / "errors" / "09-leak.json")
    text, path = render(repo)
    assert "leak" not in text
    assert_links_resolve(parse(text), path)


def test_error_details_are_cut(repo: Path) -> None:
    generated = generate(repo, 12, seed=3)
    failed = next(g for g in generated if g.status == "failed")
    error_file = repo / next(f for f in failed.files if "/errors/" in f)
    artifact = json.loads(error_file.read_text(encoding="utf-8"))
    artifact["details"] = {"exit_code": 1, "summary": "y" * 5000, "normalized_response": [{"text": "z" * 9000}]}
    error_file.write_text(json.dumps(artifact), encoding="utf-8")
    text, _ = render(repo)
    assert "y" * report.DETAIL_LIMIT + "… (cut: 5000 characters in all)" in text
    assert "y" * (report.DETAIL_LIMIT + 1) not in text
    assert "z" * 100 not in text  # the raw response stays in the artifact, behind its link


def test_unreadable_error_artifact_is_named(repo: Path) -> None:
    generated = generate(repo, 12, seed=3)
    failed = next(g for g in generated if g.status == "failed")
    error_file = repo / next(f for f in failed.files if "/errors/" in f)
    error_file.write_text("{broken", encoding="utf-8")
    page = parse(render(repo)[0])
    words = " ".join(" ".join(page.text).split())
    assert "reason unreadable error artifact" in words


def test_skipped_manifests_are_listed(repo: Path) -> None:
    generate(repo, 3, seed=1)
    broken = repo / ".runs" / "0001" / "mcp" / "2020-01-01T00-00-00-000Z-9"
    broken.mkdir()
    (broken / "manifest.json").write_text("nope", encoding="utf-8")
    words = " ".join(" ".join(parse(render(repo)[0]).text).split())
    assert "1 run(s) skipped" in words
    assert ".runs/0001/mcp/2020-01-01T00-00-00-000Z-9/manifest.json : not valid JSON: Expecting value" in words


def test_no_runs(repo: Path) -> None:
    text, path = render(repo)
    page = parse(text)
    assert_self_contained(text, page)
    words = " ".join(" ".join(page.text).split())
    assert "No finished runs yet." in words and "No runs in .runs/0001/mcp ." in words  # text chunks joined by spaces
    assert path == repo / ".runs" / "0001" / "report.html"


def test_write_report_is_atomic_and_leaves_no_temp_files(repo: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    path = report.write_report(loc, "<!DOCTYPE html>\n")
    assert path.read_text(encoding="utf-8") == "<!DOCTYPE html>\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]


def test_commands_are_listed_under_each_run_with_their_files(repo: Path) -> None:
    generated = generate(repo, 12, seed=5, hostile=True)
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    text, path = render(repo)
    page = parse(text)
    assert_links_resolve(page, path)
    details = [i for i, (tag, _) in enumerate(page.tags) if tag == "details"]
    assert len(details) == len(generated)  # every run has commands
    for row, run in zip(page.rows, reversed(generated), strict=True):
        manifest = json.loads((loc.run_dir(run.run_id) / "manifest.json").read_text(encoding="utf-8"))
        commands = manifest["commands"]
        cell = str(row["cells"][2])  # type: ignore[index]
        passed = sum(1 for c in commands if c["status"] == "succeeded")
        assert cell.startswith(f"{passed}/{len(commands)} passed ")
        for command in commands:
            assert f"{command['status']} {command['command']}" in cell
        # Each response and error file is linked from its command, once on the row.
        files = [f for f in run.files if not f.endswith(("manifest.json", "runner.log"))]
        row_hrefs = row["hrefs"]
        for relative in files:
            assert row_hrefs.count(os.path.relpath(repo / relative, path.parent)) == 1  # type: ignore[attr-defined]
    # The hostile command summary stays text inside the list too.
    assert "<script>" not in text and "\x1b" not in text


def test_when_shows_the_end_of_finished_runs_and_the_heartbeat_of_the_others(repo: Path) -> None:
    generated = generate(repo, 10, seed=2)
    page = parse(render(repo)[0])
    for row, run in zip(page.rows, reversed(generated), strict=True):
        cell = str(row["cells"][3])  # type: ignore[index]
        if run.status in ("succeeded", "failed", "cancelled"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ended (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \(.+\)", cell)
        else:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d heartbeat .+ old", cell), cell


# ---------------------------------------------------------------- charts

DAY = 86_400_000
HOUR = 3_600_000


def finished_runs(starts_and_statuses: list[tuple[int, str]]) -> list[tuple[float, RunView]]:
    return [
        (float(ms), RunView(f"r{n}", status, None, False, 0, 0, 0, None, None, float(n + 1), None, None, ""))
        for n, (ms, status) in enumerate(starts_and_statuses)
    ]


def test_buckets_are_hours_for_a_short_span() -> None:
    base = 1_700_000_000_000 - 1_700_000_000_000 % HOUR  # on the hour
    buckets = report.chart_buckets(finished_runs([
        (base + 5 * 60_000, "succeeded"), (base + 50 * 60_000, "failed"), (base + 3 * HOUR + 1, "cancelled"),
    ]))
    assert [b.unit for b in buckets] == ["hour"] * 4
    assert [b.start_ms for b in buckets] == [base + n * HOUR for n in range(4)]
    assert [(b.succeeded, b.failed, b.cancelled) for b in buckets] == [(1, 1, 0), (0, 0, 0), (0, 0, 0), (0, 0, 1)]
    assert [b.median_seconds for b in buckets] == [1.5, None, None, 3]
    assert buckets[0].label == report.Bucket(base, "hour", 0, 0, 0, None).label == iso_label(base, 16)


def iso_label(ms: int, width: int) -> str:
    from mcp_core.jsfmt import iso_from_ms

    return iso_from_ms(ms)[:width].replace("T", " ")


def test_buckets_are_days_then_weeks_and_keep_the_empty_ones() -> None:
    day0 = 1_700_006_400_000  # 2023-11-15T00:00:00Z
    two_weeks = finished_runs([(day0 + n * DAY + 7 * HOUR, "succeeded") for n in range(0, 14, 2)])
    buckets = report.chart_buckets(two_weeks)
    assert (len(buckets), {b.unit for b in buckets}) == (13, {"day"})
    assert [b.runs for b in buckets] == [1, 0] * 6 + [1]
    assert buckets[0].label == "2023-11-15"
    long_span = finished_runs([(day0, "failed"), (day0 + 200 * DAY, "succeeded")])
    weeks = report.chart_buckets(long_span)
    assert {b.unit for b in weeks} == {"week"}
    assert weeks[0].label == "week of 2023-11-13"  # the Monday before
    assert (weeks[0].failed, weeks[-1].succeeded, sum(b.runs for b in weeks)) == (1, 1, 2)


def test_thousands_of_runs_make_a_readable_number_of_bars() -> None:
    day0 = 1_700_006_400_000
    many = finished_runs([(day0 + n * 600_000, "succeeded" if n % 3 else "failed") for n in range(10_000)])
    buckets = report.chart_buckets(many)
    assert (buckets[0].unit, len(buckets)) == ("day", 70)  # 10,000 runs 10 minutes apart: 69.4 days
    assert sum(b.runs for b in buckets) == 10_000
    assert all(b.runs == 144 for b in buckets[:-1])  # a full day
    for chart in (report.runs_chart(buckets), report.success_chart(buckets), report.duration_chart(buckets)):
        page = parse(chart)
        assert sum(1 for tag, _ in page.tags if tag == "svg") == 1
        assert "xmlns" not in chart  # inline SVG in HTML needs no namespace URL
        assert sum(1 for tag, _ in page.tags if tag == "title") == len(buckets)  # a tooltip per bar


def test_a_bucket_without_runs_says_so_and_a_zero_rate_stays_visible() -> None:
    day0 = 1_700_006_400_000
    buckets = report.chart_buckets(finished_runs([(day0, "failed"), (day0 + 2 * DAY, "succeeded")]))
    chart = report.success_chart(buckets)
    assert "2023-11-15: 0 of 1 succeeded (0%)" in chart and "2023-11-16: no finished runs" in chart
    bars = re.findall(r'<rect class="bar (\w+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', chart)
    assert [(css, float(height)) for css, _, height in bars] == [("poor", 2.0), ("good", 100.0)]


# ---------------------------------------------------------------- in a real browser

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
)
WIDTHS = (400, 1120)  # a phone; and just wider than the card layout's limit, where the table is back
# The page has no script (its CSP forbids one), so a harness page holds it in iframes of
# those widths and measures it from outside; file pages may reach into each other only with
# --allow-file-access-from-files. --dump-dom prints the harness once it has loaded, which is
# after every iframe's load handler has written its figures.
HARNESS_FRAME = '<iframe id="w{width}" src="{src}" style="width:{width}px;height:900px;border:0"></iframe>'
HARNESS_SCRIPT = """<script>
for (const frame of document.querySelectorAll("iframe")) frame.addEventListener("load", () => {
  const doc = frame.contentDocument, root = doc.documentElement;
  const measure = () => ({scroll: root.scrollWidth, client: root.clientWidth,
    wide: [...doc.body.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
      .map(e => e.tagName + "." + e.className).slice(0, 8)});
  const closed = measure();
  doc.querySelectorAll("details").forEach(d => { d.open = true; });
  const opened = measure();
  const plots = [...doc.querySelectorAll("svg.plot")];
  const out = document.createElement("pre");
  out.className = "measured";
  out.textContent = JSON.stringify({width: frame.id, closed, opened, details: doc.querySelectorAll("details").length,
    bars: plots.map(svg => svg.querySelectorAll("title").length),
    plotWidths: plots.map(svg => svg.getBoundingClientRect().width),
    scripts: doc.querySelectorAll("script").length});
  document.body.append(out);
});
</script>"""


def measured_in_chromium(page_file: Path, tmp_path: Path) -> dict[str, dict[str, object]]:
    """Lay the page out in headless Chromium at each of ``WIDTHS`` CSS pixels and measure it."""
    assert CHROMIUM is not None
    frames = "".join(HARNESS_FRAME.format(width=width, src=html.escape(page_file.as_uri())) for width in WIDTHS)
    harness = tmp_path / "harness.html"
    harness.write_text(f"<!DOCTYPE html><html><body>{frames}{HARNESS_SCRIPT}</body></html>", encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={sum(WIDTHS) + 100},1000",
         "--dump-dom", harness.as_uri()],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    found = [json.loads(html.unescape(m)) for m in re.findall(r'<pre class="measured">(.*?)</pre>', result.stdout)]
    assert len(found) == len(WIDTHS), f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    return {figures["width"]: figures for figures in found}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize(("runs", "spacing", "unit"), [(10, 900, HOUR), (2000, 900, DAY)])
def test_in_chromium_no_sideways_scroll_at_400_px_nor_above_the_card_layout(
    repo: Path, tmp_path: Path, runs: int, spacing: int, unit: int
) -> None:
    generated = generate(repo, runs, seed=6, hostile=True, spacing_seconds=spacing, artifacts=runs < 100)
    starts = [int(run_id_ms(g.run_id) or 0) + 1 for g in generated if g.status in ("succeeded", "failed", "cancelled")]
    bars = max(starts) // unit - min(starts) // unit + 1  # every hour or day from the first run's to the last's
    # A run with a long unbroken command, summary and id-like text: they must wrap, not widen the page.
    manifest_file = repo / generated[-5].files[0]
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["commands"][0]["command"] = "npm run build -- --config=" + "x" * 250
    manifest["summary"] = "y" * 300
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    text, path = render(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    measured = measured_in_chromium(path, tmp_path)
    for width in WIDTHS:
        figures = measured[f"w{width}"]
        for state in ("closed", "opened"):  # the commands lists folded, then all unfolded
            seen = figures[state]
            assert seen["scroll"] <= seen["client"] < width, (width, state, seen)  # type: ignore[index,operator]
        assert figures["bars"] == [bars] * 3  # one bar per hour or day, the same in the three charts
        assert figures["details"] == min(runs, report.DEFAULT_TABLE_LIMIT)
        assert all(w > 200 for w in figures["plotWidths"])  # type: ignore[attr-defined]
        assert figures["scripts"] == 0
