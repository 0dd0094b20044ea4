"""File names that cannot give a usable source ID (not UTF-8, a line break or control
character, a space at either end of a part) are skipped with their reason; the rest of
the corpus is indexed and answered from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.articles import locate
from crampqa.corpus import read_corpus
from tests.conftest import FakeEmbedder, run_main

ARTICLE = b"Night cramps. Calf cramps at night are common in older adults.\n"
#: raw file name -> the path a skip reports, and the start of its reason
BAD_NAMES: dict[bytes, tuple[str, str]] = {
    b"bad\xffname.txt": ("bad\\xffname.txt", "file name is not valid UTF-8"),
    b" lead.txt": (" lead.txt", "file or folder name starts or ends"),
    b"trail .txt": ("trail .txt", "file or folder name starts or ends"),
    b"new\nline.txt": ("new\nline.txt", "file name has a line break"),
    b"tab\tname.txt": ("tab\tname.txt", "file name has a line break"),
    b"sub /inner.txt": ("sub /inner.txt", "file or folder name starts or ends"),
    b"bad\xfefolder/inner.txt": ("bad\\xfefolder/inner.txt", "file name is not valid UTF-8"),
}

pytestmark = pytest.mark.usefixtures("fake_default_model")


@pytest.fixture
def odd_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "good.txt").write_bytes(ARTICLE)
    root = os.fsencode(folder)
    for name in BAD_NAMES:
        path = root + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(ARTICLE)
    return folder


def test_unusable_names_are_skipped_with_their_reason(odd_corpus: Path) -> None:
    report = read_corpus(odd_corpus)
    assert [d.doc_id for d in report.documents] == ["good"]
    skipped = dict(report.skipped)
    for shown, reason in BAD_NAMES.values():
        assert skipped[shown].startswith(reason) and skipped[shown].endswith("rename it")
    # every path reported is text that can be stored as UTF-8 JSON
    json.dumps(report.skipped, ensure_ascii=False).encode("utf-8")


def test_a_corpus_with_such_names_is_indexed_and_answered(odd_corpus: Path,
                                                          tmp_path: Path) -> None:
    qa = CrampQA.open(odd_corpus, tmp_path / "index", embedder=FakeEmbedder())
    answer = qa.ask("calf cramps at night")
    assert [p.doc_id for p in answer.passages] == ["good"]
    for passage in answer.passages:
        assert locate(qa, passage.source_id).doc_id == "good"
    again = CrampQA.open(odd_corpus, tmp_path / "index", embedder=FakeEmbedder())
    assert again.ask("calf cramps at night").to_dict() == answer.to_dict()


def test_index_and_ask_report_the_skipped_names(odd_corpus: Path, tmp_path: Path) -> None:
    code, _, err = run_main("index", "--corpus", odd_corpus, "--index", tmp_path / "i")
    assert code == 0, err
    assert "Traceback" not in err
    assert "skipped bad\\xffname.txt: file name is not valid UTF-8" in err
    assert "skipped new␊line.txt" in err or "skipped new\nline.txt" in err
    code, out, err = run_main("ask", "calf cramps at night", "--corpus", odd_corpus,
                              "--index", tmp_path / "i", "--json")
    assert code == 0, err
    assert json.loads(out)["passages"][0]["doc_id"] == "good"
