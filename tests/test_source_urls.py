"""Only ``http``/``https`` addresses from ``sources.json`` become links: other schemes
(``javascript:``, ``data:``, …) are dropped when the corpus is read or an index opened,
and the page's scripts link only http(s) addresses whatever the server sends."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.corpus import read_corpus, web_url
from crampqa.store import current_version, load_version
from crampqa.web.app import STATIC_DIR
from tests.conftest import FakeEmbedder
from tests.support import rewrite_checksums

ARTICLE = "Night cramps. Calf cramps at night are common in older adults.\n"
URLS = {
    "https://example.org/cramps": "https://example.org/cramps",
    " http://example.org/a?b=1 ": "http://example.org/a?b=1",
    "HTTPS://EXAMPLE.ORG/": "HTTPS://EXAMPLE.ORG/",
    "javascript:alert(1)": "",
    "JaVaScRiPt:alert(1)": "",
    " javascript:alert(1)": "",
    "data:text/html,<script>alert(1)</script>": "",
    "vbscript:msgbox": "",
    "ftp://example.org/file": "",
    "https:///no-host": "",
    "//example.org/relative": "",
    "https://example.org/\nline": "",
    "http://[::1": "",
}


@pytest.mark.parametrize(("given", "kept"), URLS.items())
def test_web_url_keeps_only_http_and_https(given: str, kept: str) -> None:
    assert web_url(given) == kept


def test_sources_json_urls_are_filtered_when_read(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "good.txt").write_text(ARTICLE)
    (folder / "bad.txt").write_text(ARTICLE)
    (folder / "sources.json").write_text(json.dumps({
        "good": {"url": "https://example.org/good"},
        "bad": {"url": "javascript:alert(document.cookie)"}}))
    urls = {d.doc_id: d.url for d in read_corpus(folder).documents}
    assert urls == {"good": "https://example.org/good", "bad": ""}


def test_an_index_holding_another_scheme_shows_no_link(tmp_path: Path) -> None:
    """An index written before URLs were checked: its stored URL is dropped on load."""
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE)
    qa = CrampQA.open(folder, tmp_path / "index", embedder=FakeEmbedder())
    version = qa.data.folder
    docs = version / "documents.jsonl"
    rows = [json.loads(line) for line in docs.read_text(encoding="utf-8").splitlines()]
    rows[0]["url"] = "javascript:alert(1)"
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rewrite_checksums(version)
    assert current_version(tmp_path / "index") == version
    assert [d.url for d in load_version(version).documents] == [""]


def web_link_results(script: Path, urls: list[str]) -> list[dict[str, str]]:
    """Run the page script's ``webLink`` in node with a minimal stand-in for the DOM."""
    source = script.read_text(encoding="utf-8")
    match = re.search(r"\n  function webLink\(url\) \{.*?\n  \}\n", source, re.S)
    assert match, f"{script.name} has no webLink function"
    program = (
        "function el(tag, className, text) { return {tag: tag, text: text}; }\n"
        + match.group(0)
        + f"\nconsole.log(JSON.stringify({json.dumps(urls)}.map(function (u) {{"
        "const n = webLink(u); return {tag: n.tag, href: n.href || ''}; })));\n")
    node = shutil.which("node") or shutil.which("nodejs")
    assert node is not None
    out = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return list(json.loads(out))


@pytest.mark.skipif(not (shutil.which("node") or shutil.which("nodejs")),
                    reason="node is not installed")
@pytest.mark.parametrize("name", ["app.js", "article.js"])
def test_the_page_links_only_http_and_https(name: str) -> None:
    urls = ["https://example.org/a", "http://example.org/b", "javascript:alert(1)",
            "data:text/html,x", "  JAVASCRIPT:alert(1)", "not a url"]
    results = web_link_results(STATIC_DIR / name, urls)
    assert [r["tag"] for r in results] == ["a", "a", "span", "span", "span", "span"]
    assert [r["href"] for r in results[:2]] == urls[:2]
    script = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert re.findall(r"\.href = (\w+(?:\.\w+)?);", script).count("url") == 1
