"""mcp_core.report: the static HTML page, checked by parsing it (html.parser)."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import snapshot
from gen_runs import generate

from mcp_core import report
from mcp_core.jsfmt import now_ms
from mcp_core.paths import locate
from mcp_core.runs_index import RunRecord, RunView, read_task_runs


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
    assert [row["cells"][0] for row in page.rows] == [  # type: ignore[index]
        "2025-10-19T06-54-01-535Z-diagnostics",
        "2025-10-19T06-30-08-316Z-55446",
        "2025-10-18T18-31-38-655Z-41397",
        "2025-10-18T18-30-06-976Z-41083",
        "2025-10-18T18-26-16-688Z-39463",
        "demo-legacy",
    ]
    succeeded = page.rows[4]
    assert succeeded["cells"][1:5] == ["succeeded", "4/4", "2025-10-18T18:26:16.689Z", "53.7s"]  # type: ignore[index]
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
    assert sum(1 for tag, _ in page.tags if tag == "svg") == 2


def test_generated_report_links_escaping_and_failures(repo: Path) -> None:
    generated = generate(repo, 40, seed=7, hostile=True, spacing_seconds=2400)
    text, path = render(repo)
    page = parse(text)
    assert_self_contained(text, page)
    assert_links_resolve(page, path)
    assert [row["cells"][0] for row in page.rows] == [g.run_id for g in reversed(generated)]  # type: ignore[index]
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
    assert page.rows[0]["cells"][0] == run_id  # type: ignore[index]
    assert "</td></tr><marquee>x" in page.rows[0]["cells"][6]  # type: ignore[index]
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


def _finished(n: int, succeeded_every: int = 2) -> list[tuple[float, RunView]]:
    views = []
    for i in range(n):
        status = "succeeded" if i % succeeded_every == 0 else "failed"
        record = RunRecord(Path("/r"), f"r{i}", {"status": status}, None)
        view = RunView(f"r{i}", status, None, False, 0, 0, 0, None, None, float(i), None, "")
        views.append((float(i * 1000), view))
        assert record.terminal
    return views


@pytest.mark.parametrize(
    ("runs", "groups", "sizes"),
    [(1, 1, {1}), (6, 6, {1}), (9, 9, {1}), (10, 2, {5}), (12, 2, {6}), (57, 11, {5, 6}), (10_000, 40, {250})],
)
def test_chart_groups(runs: int, groups: int, sizes: set[int]) -> None:
    result = report.chart_groups(_finished(runs))
    assert len(result) == groups
    assert {g.runs for g in result} == sizes
    assert sum(g.runs for g in result) == runs
    assert result[0].first_ms == 0 and result[-1].last_ms == (runs - 1) * 1000


def test_chart_group_figures() -> None:
    first, second = report.chart_groups(_finished(10))
    assert (first.runs, first.succeeded, first.median_seconds) == (5, 3, 2)
    assert (second.runs, second.succeeded, second.median_seconds) == (5, 2, 7)
    assert report.chart_groups(_finished(4))[1].median_seconds == 1


def test_charts_are_inline_svg_with_tooltips() -> None:
    groups = report.chart_groups(_finished(20))
    for svg in (report.success_chart(groups), report.duration_chart(groups)):
        page = parse(svg)
        assert page.tags[0][0] == "svg"
        assert "xmlns" not in svg  # inline SVG in HTML needs no namespace URL
        assert sum(1 for tag, _ in page.tags if tag == "title") == len(groups)
