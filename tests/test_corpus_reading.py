"""Reading a corpus folder (issue #15): special files, size limit, unique document IDs,
unreadable and deeply nested folders, corpora of only skipped files, linear HTML parsing.

Builds use the fake embedder (tests/conftest.py) mapped to the default model name.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crampqa import CrampQA
from crampqa.config import max_file_bytes
from crampqa.corpus import corpus_fingerprint, html_to_text, read_corpus, unique_ids
from crampqa.errors import CorpusError, InputError
from tests.conftest import FakeEmbedder, run_main

QUESTION = "why do my calves cramp at night"
ARTICLE = "Night cramps. Calf cramps at night are common in older adults.\n"


pytestmark = pytest.mark.usefixtures("fake_default_model")


def one_line_error(code: int, out: str, err: str, expected: int) -> str:
    """Assert a one-line ``crampqa: error:`` failure with exit ``expected``."""
    assert code == expected, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("crampqa: error: ")
    return lines[0].removeprefix("crampqa: error: ")


def finishes(fn: Callable[[], Any], unblock: list[Path], timeout: float = 60) -> Any:
    """Run ``fn`` in a thread; fail (after unblocking any FIFO reader) if it hangs."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in unblock:  # a writer lets a blocked open() of the FIFO return
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"{fn} blocked on a special file")
    if "error" in result:
        raise result["error"]
    return result.get("value")


# ---- special files ---------------------------------------------------------------------


def test_fifo_and_socket_are_skipped_and_never_block(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE)
    os.mkfifo(corpus / "x.txt")
    os.mkfifo(corpus / "sources.json")  # metadata file: not read either
    server = socket.socket(socket.AF_UNIX)
    old = Path.cwd()
    os.chdir(corpus)  # a short socket path, whatever tmp_path is
    try:
        server.bind("s.md")
    finally:
        os.chdir(old)
    index = tmp_path / "index"
    try:
        report = finishes(lambda: read_corpus(corpus), [corpus / "x.txt"])
        assert [d.doc_id for d in report.documents] == ["article"]
        assert ("x.txt", "not a regular file (FIFO)") in report.skipped
        assert ("s.md", "not a regular file (socket)") in report.skipped
        code, _, err = finishes(lambda: run_main("index", "--corpus", corpus, "--index", index),
                                [corpus / "x.txt"])
        assert code == 0, err
        assert "skipped x.txt: not a regular file (FIFO)" in err.splitlines()
        code, out, err = finishes(lambda: run_main("ask", QUESTION, "--json", "--corpus", corpus,
                                                   "--index", index), [corpus / "x.txt"])
        assert code == 0, err
        assert json.loads(out)["passages"][0]["doc_id"] == "article"
    finally:
        server.close()


def test_device_is_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE)
    try:
        (corpus / "null.txt").symlink_to("/dev/null")  # a link, but to a device
        os.mknod(corpus / "zero.txt", 0o600 | 0o020000, os.makedev(1, 5))  # char device
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    report = read_corpus(corpus)
    assert [d.doc_id for d in report.documents] == ["article"]
    assert ("zero.txt", "not a regular file (device)") in report.skipped


# ---- size limit ------------------------------------------------------------------------


def test_default_file_size_limit_is_10_megabytes() -> None:
    assert max_file_bytes() == 10_000_000


def test_files_over_the_size_limit_are_skipped_with_a_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE)
    (corpus / "big.txt").write_text("Cramps are common. " * 10_000)  # 190,000 bytes
    report = read_corpus(corpus, max_bytes=100_000)
    assert [d.doc_id for d in report.documents] == ["article"]
    assert report.skipped == [("big.txt", "too large (0.2 MB; the limit is 0.1 MB, set "
                                          "CRAMPQA_MAX_FILE_MB to change it)")]
    monkeypatch.setenv("CRAMPQA_MAX_FILE_MB", "0.1")
    code, _, err = run_main("index", "--corpus", corpus, "--index", tmp_path / "index")
    assert code == 0, err
    assert err.splitlines()[0] == ("skipped big.txt: too large (0.2 MB; the limit is 0.1 MB, "
                                   "set CRAMPQA_MAX_FILE_MB to change it)")
    monkeypatch.setenv("CRAMPQA_MAX_FILE_MB", "1")
    code, _, err = run_main("index", "--corpus", corpus, "--index", tmp_path / "index")
    assert code == 0 and "skipped big.txt" not in err, err
    assert "Indexed 2 documents" in err


@pytest.mark.parametrize("value", ["0", "-3", "ten", "nan", "inf", "1e308", "1000001"])
def test_bad_size_limit_setting_is_a_one_line_error(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE)
    monkeypatch.setenv("CRAMPQA_MAX_FILE_MB", value)
    with pytest.raises(InputError):
        max_file_bytes()
    message = one_line_error(*run_main("index", "--corpus", corpus, "--index",
                                       tmp_path / "index"), expected=2)
    assert message == (f"CRAMPQA_MAX_FILE_MB must be a positive number of megabytes, at "
                       f"most 1,000,000 (got '{value}').")


# ---- document IDs ----------------------------------------------------------------------


def test_files_that_would_share_an_id_get_distinct_ids(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    texts = {
        "a.md": "Magnesium. Magnesium may help some people with cramps.\n",
        "a.txt": "Potassium. Bananas are a source of potassium for the muscles.\n",
        "a.md.txt": "Stretching. Calf stretches before bed can reduce night cramps.\n",
        "b.md": "Quinine. Quinine is no longer advised for leg cramps in most cases.\n",
    }
    for name, text in texts.items():
        (corpus / name).write_text(text)
    report = read_corpus(corpus)
    ids = {d.path: d.doc_id for d in report.documents}
    assert ids == {"a.md": "a.md", "a.txt": "a.txt", "a.md.txt": "a.md.txt", "b.md": "b"}
    qa = CrampQA.open(corpus, tmp_path / "index", embedder=FakeEmbedder())
    for path, doc_id in ids.items():
        assert qa.document_text(doc_id) == texts[path]
    for question in ("magnesium cramps", "bananas potassium", "calf stretches before bed"):
        for passage in qa.ask(question, k=4).passages:
            source = texts[next(p for p, i in ids.items() if i == passage.doc_id)]
            assert passage.text == source[passage.start : passage.end]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", ".md", ".txt", ".html", "/"]),
                         min_size=1, max_size=6).map("".join), max_size=12, unique=True))
def test_unique_ids_never_repeat(paths: list[str]) -> None:
    candidates = [(str(Path(p).with_suffix("")) if Path(p).name not in ("", ".") else p, p)
                  for p in paths]
    ids = unique_ids(candidates)
    assert len(set(ids)) == len(ids)
    for (stem, path), doc_id in zip(candidates, ids, strict=True):
        assert doc_id in (stem, path)


# ---- folders ---------------------------------------------------------------------------


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make listing ``denied`` fail with EACCES, as it does for a user without rights
    (tests run as root, for whom chmod 000 does not block reading)."""
    import crampqa.corpus as corpus_module

    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(corpus_module.os, "scandir", scandir)


def test_unreadable_subfolder_is_listed_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    (corpus / "private").mkdir(parents=True)
    (corpus / "article.txt").write_text(ARTICLE)
    (corpus / "private" / "notes.txt").write_text(ARTICLE)
    if os.geteuid() == 0:
        _deny(monkeypatch, corpus / "private")
    else:
        (corpus / "private").chmod(0)
    try:
        report = read_corpus(corpus)
    finally:
        (corpus / "private").chmod(0o755)
    assert [d.doc_id for d in report.documents] == ["article"]
    assert report.skipped == [("private/", "unreadable folder (Permission denied)")]


def test_unreadable_corpus_folder_is_a_corpus_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE)
    _deny(monkeypatch, corpus)
    with pytest.raises(CorpusError) as info:
        read_corpus(corpus)
    assert info.value.message == (f"Cannot read the corpus folder {corpus}: Permission denied; "
                                  "check its permissions.")


def test_deeply_nested_folders_are_walked_without_recursion(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    deep = corpus
    corpus.mkdir()
    for _ in range(1100):  # one level at a time: Path.mkdir(parents=True) recurses
        deep = deep / "d"
        deep.mkdir()
    (deep / "deep.txt").write_text(ARTICLE)
    (corpus / "top.txt").write_text(ARTICLE)
    try:
        report = read_corpus(corpus)
        assert sorted(d.doc_id for d in report.documents) == ["d/" * 1100 + "deep", "top"]
        assert len(corpus_fingerprint(corpus)) == 2
    finally:  # bottom up: shutil.rmtree (pytest's clean-up) recurses too
        (deep / "deep.txt").unlink()
        while deep != corpus:
            deep.rmdir()
            deep = deep.parent


def test_walk_order_is_unchanged(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    for rel in ("b/z.txt", "b/a/y.txt", "a.txt", "c/x.txt", ".hidden/h.txt", "b/.h/i.txt"):
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(ARTICLE)
    (corpus / "link").symlink_to(corpus / "c")  # links to folders are not entered
    expected = []
    for dirpath, dirnames, filenames in os.walk(corpus):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        expected += [Path(dirpath, n).relative_to(corpus).as_posix() for n in sorted(filenames)]
    assert [row[0] for row in corpus_fingerprint(corpus)] == expected
    assert [d.path for d in read_corpus(corpus).documents] == ["a.txt", "b/z.txt", "b/a/y.txt",
                                                               "c/x.txt"]


# ---- a corpus of only skipped files ----------------------------------------------------


@pytest.mark.parametrize("command", ["index", "ask"])
def test_corpus_of_only_skipped_files_says_which_and_why(command: str, tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "photo.png").write_bytes(b"\x89PNG")
    (corpus / "empty.txt").write_text("")
    (corpus / "links.md").write_text("See also: leg cramps\nRelated: calf pain\n")
    args = [command, *([QUESTION] if command == "ask" else []), "--corpus", corpus,
            "--index", tmp_path / "index"]
    message = one_line_error(*run_main(*args), expected=3)
    assert message == (
        f"No readable documents in {corpus} (supported: .txt, .md, .html, BEIR corpus.jsonl); "
        "empty.txt (empty file); links.md (no passage text (only 'See also: …'-style link "
        "lines or table rules)); photo.png (unsupported file type '.png'); 3 file(s) skipped.")


def test_long_list_of_skipped_files_is_shortened(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(8):
        (corpus / f"f{i}.png").write_bytes(b"x")
    message = one_line_error(*run_main("index", "--corpus", corpus, "--index",
                                       tmp_path / "index"), expected=3)
    assert message.endswith("corpus.jsonl); f0.png (unsupported file type '.png'); "
                            "f1.png (unsupported file type '.png'); f2.png (unsupported file "
                            "type '.png'); f3.png (unsupported file type '.png'); f4.png "
                            "(unsupported file type '.png') and 3 more; 8 file(s) skipped.")


# ---- HTML ------------------------------------------------------------------------------


def reference_html_to_text(html: str) -> tuple[str, str]:
    """The previous implementation (quadratic on wide or deep pages), kept as the
    reference the linear one must match exactly."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            continue
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head is not None:
        soup.head.decompose()
    blocks = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section",
              "article", "header", "footer", "table", "ul", "ol", "blockquote", "pre")
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    lines = [" ".join(line.split()) for line in soup.get_text().splitlines()]
    text = "\n".join(line for line in lines if line)
    return text, title


TAG_NAMES = ["p", "div", "li", "ul", "td", "th", "tr", "table", "span", "b", "head", "title",
             "script", "style", "noscript", "template", "br", "pre", "html", "body", "h1",
             "ruby", "rt"]
HTML_SOUP = st.lists(st.one_of(
    st.sampled_from(TAG_NAMES).map(lambda t: f"<{t}>"),
    st.sampled_from(TAG_NAMES).map(lambda t: f"</{t}>"),
    st.sampled_from(["<!-- c -->", "<![CDATA[cd]]>", "<!DOCTYPE html>", "&amp;", "<br/>"]),
    st.sampled_from(["hello ", " world\n", "  a\tb ", "x", "\n\n", "é", "Cramps."]),
), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(HTML_SOUP)
def test_html_to_text_matches_the_previous_output(html: str) -> None:
    assert html_to_text(html) == reference_html_to_text(html)


def test_html_to_text_of_a_page() -> None:
    page = ("<html><head><title> Leg  cramps </title><style>p{}</style></head><body>"
            "<h1>Cramps</h1><p>Night <b>cramps</b> hurt.</p><script>x()</script>"
            "<table><tr><th>Mineral</th><th>Dose</th></tr><tr><td>Mg</td><td>300 mg</td>"
            "</tr></table><ul><li>one</li><li>two</li></ul></body></html>")
    assert html_to_text(page) == (
        "Cramps\nNight cramps hurt.\nMineral | Dose |\nMg | 300 mg |\none\ntwo", "Leg  cramps")


def _best_time(fn: Callable[[], Any], repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("page", [
    lambda n: "<ul>" + "<li>item</li>" * n + "</ul>",
    lambda n: "<div>x" * n + "</div>" * n,
], ids=["wide", "deep"])
def test_html_to_text_is_linear(page: Callable[[int], str]) -> None:
    small, large = page(4_000), page(16_000)
    html_to_text(small)  # warm up the import
    ratio = _best_time(lambda: html_to_text(large)) / _best_time(lambda: html_to_text(small))
    # linear: about 4; the previous, quadratic version: about 16
    assert ratio < 9, ratio


def test_fifty_thousand_nested_divs(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "deep.html").write_text("<div>Leg cramps are common." * 50_000
                                      + "</div>" * 50_000)
    start = time.perf_counter()
    report = read_corpus(corpus)
    assert time.perf_counter() - start < 30
    assert report.documents[0].text.count("\n") == 49_999
