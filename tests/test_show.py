"""Reading a passage in its article: the Python API, `crampqa show`, /api/article and the
page's article view; `crampqa info` summary and manifest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.articles import locate, parse_source_id
from crampqa.errors import InputError, UnknownSourceError
from crampqa.presentation import MARK_END, MARK_START
from crampqa.web.app import create_app
from crampqa.web.launch import running_server
from tests.conftest import CHROMIUM_ARGS, CORPUS, chromium_or_skip, run_main

LIST_QUESTION = "should I stretch my calves before bed"


def test_parse_source_id() -> None:
    assert parse_source_id("000_x#12-40") == ("000_x", 12, 40)
    assert parse_source_id("000_x") == ("000_x", None, None)
    with pytest.raises(InputError):
        parse_source_id("  ")


def test_locate_a_passage_in_its_article(real_qa: CrampQA) -> None:
    answer = real_qa.ask(LIST_QUESTION, k=3)
    for p in answer.passages:
        view = locate(real_qa, p.source_id)
        doc = real_qa.document_text(p.doc_id)
        assert view.text == p.text == doc[view.start:view.end]
        assert view.around == doc[view.around_start:view.around_end]
        assert view.around_start <= view.start < view.end <= view.around_end
        assert view.title == p.title and view.heading == p.heading
        assert view.url == "" and p.url == ""  # our five articles have no URL: none invented
    whole = locate(real_qa, "001_3d8ed29e24e925cb")
    assert (whole.start, whole.end) == (0, len(whole.document))


@pytest.mark.parametrize("source", ["nope#1-2", "000_153f9343c5352d90#10-999999",
                                    "000_153f9343c5352d90#50-20"])
def test_unknown_sources_are_clear_errors(real_qa: CrampQA, source: str) -> None:
    with pytest.raises(UnknownSourceError):
        locate(real_qa, source)


def test_cli_show(real_index: Path, real_qa: CrampQA) -> None:
    p = real_qa.ask(LIST_QUESTION, k=1).passages[0]
    code, out, err = run_main("show", p.source_id, "--index", real_index, "--corpus", CORPUS)
    assert code == 0, err
    assert out.startswith(p.title + "\n")
    assert f"source: {p.source_id}" in out
    assert f"section: {p.heading}" in out
    assert f"{MARK_START}{p.text}{MARK_END}" in out
    code, full, _ = run_main("show", p.source_id, "--full", "--index", real_index)
    doc = real_qa.document_text(p.doc_id)
    assert full.split("\n", 3)[3].replace(MARK_START, "").replace(MARK_END, "") == doc + "\n"
    code, raw, _ = run_main("show", p.source_id, "--json", "--index", real_index)
    data = json.loads(raw)
    assert data["text"] == p.text and "document" not in data
    code, _, err = run_main("show", "nope#1-2", "--index", real_index)
    assert code == 2 and err.startswith("crampqa: error: No source 'nope'")
    assert len(err.strip().splitlines()) == 1


def test_info_is_a_short_summary(real_index: Path) -> None:
    code, out, err = run_main("info", "--index", real_index, "--corpus", CORPUS)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) <= 10
    for word in ("documents", "passages", "model", "scorer", "index type", "built", "corpus",
                 "MB on disk"):
        assert word in out
    code, raw, _ = run_main("info", "--json", "--index", real_index)
    assert json.loads(raw)["format_version"] >= 1
    code, verified, err = run_main("info", "--verify", "--index", real_index)
    # the verdict first
    assert verified.startswith("OK: the manifest and all ") and "documents" in verified


def test_info_piped_prints_the_summary(real_index: Path) -> None:
    code, out, _ = run_main("info", "--index", real_index)  # stdout is not a terminal here
    assert code == 0 and out.startswith("documents ")
    code, out, _ = run_main("info", "--summary", "--index", real_index)
    assert out.startswith("documents ")
    code, raw, _ = run_main("info", "--json", "--index", real_index)
    assert code == 0 and json.loads(raw)["format_version"] >= 1


@pytest.fixture(scope="module")
def client(real_qa: CrampQA) -> Iterator[TestClient]:
    with TestClient(create_app(real_qa), base_url="http://127.0.0.1:8765") as test_client:
        yield test_client


def test_api_article(client: TestClient, real_qa: CrampQA) -> None:
    p = real_qa.ask(LIST_QUESTION, k=1).passages[0]
    response = client.get("/api/article", params={"source": p.source_id})
    assert response.status_code == 200
    data = response.json()
    assert data["document"] == real_qa.document_text(p.doc_id)
    assert data["document"][data["start"]:data["end"]] == p.text
    assert data["title"] == p.title
    missing = client.get("/api/article", params={"source": "nope#1-2"})
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_source"
    page = client.get("/article", params={"source": p.source_id})
    assert page.status_code == 200 and "article.js" in page.text
    assert "content-security-policy" in page.headers


@pytest.mark.browser
def test_article_view_in_headless_chromium(real_index: Path, real_qa: CrampQA,
                                           tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is missing (pip install playwright)")
    from crampqa.config import PROJECT_ROOT

    answer = real_qa.ask(LIST_QUESTION, k=3)
    target = max(answer.passages, key=lambda p: p.start)  # far down its article
    problems: list[str] = []
    with running_server(CORPUS, real_index, startup_s=120, cwd=PROJECT_ROOT,
                        log_path=tmp_path / "serve.log") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 700})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{base}/?q={LIST_QUESTION.replace(' ', '+')}&k=3")
            cards = page.locator("article.passage")
            expect(cards).to_have_count(len(answer.passages), timeout=30_000)
            for i, p in enumerate(answer.passages):
                expect(cards.nth(i).locator(".badge")).to_have_text(
                    answer.to_dict()["passages"][i]["strength"].capitalize() + " match")
                if p.kind == "list" and p.context:
                    expect(cards.nth(i).locator(".list-intro")).to_have_text(p.context)
            link = cards.nth(answer.passages.index(target)).locator("a.source-link")
            link.click()
            page.wait_for_url("**/article?source=*")
            mark = page.locator("mark#passage")
            expect(mark).to_have_text(target.text, timeout=30_000)
            expect(page.locator("#article-title")).to_have_text(target.title)
            body = page.locator(".article-body").text_content()
            assert body == real_qa.document_text(target.doc_id)  # verbatim, whole article
            assert mark.is_visible()
            in_view = page.evaluate(
                "() => { const r = document.getElementById('passage').getBoundingClientRect();"
                " return r.top < window.innerHeight && r.bottom > 0; }")
            assert in_view, "the passage is scrolled into view"
            assert page.evaluate("window.scrollY") > 0
            headings = page.locator(".article-heading")
            assert headings.count() > 0  # section headings stand out from the body text
            assert target.heading in headings.all_text_contents()
            page.screenshot(path=str(tmp_path / "article.png"))
            # the way back leads to the answers to the same question (no referrer is sent)
            back = page.locator("#back")
            expect(back).to_have_attribute("href", "/?" + urlencode({"q": LIST_QUESTION,
                                                                     "k": "3"}))
            back.click()
            page.wait_for_url("**/?q=*")
            expect(page.locator("#question")).to_have_value(LIST_QUESTION)
            expect(page.locator("article.passage")).to_have_count(len(answer.passages),
                                                                  timeout=30_000)
        finally:
            browser.close()
    assert not problems, problems
