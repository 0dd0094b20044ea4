"""Odd set-ups that must still behave: an index kept inside its corpus folder, a lost
``CURRENT`` pointer, ``/api/article`` with stray parameters, and counts of one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.store import CURRENT_FILE, current_version
from crampqa.web.app import create_app
from tests.conftest import CORPUS, FakeDefaultEmbedder, FakeEmbedder
from tests.support import QUESTION, cli, summary_line

pytestmark = pytest.mark.usefixtures("fake_default_model")


def test_an_index_inside_its_corpus_is_not_part_of_it(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = corpus / "index"
    first = cli("index", "--corpus", corpus, "--index", index)
    assert first.code == 0, first.err
    folder = current_version(index)
    for _ in range(2):
        again = cli("index", "--corpus", corpus, "--index", index)
        assert again.code == 0, again.err
        assert "(up to date: nothing written)" in summary_line(again.err_lines)
        assert "skipped index/" not in again.err
        assert current_version(index) == folder
    assert cli("ask", QUESTION, "--json", "--corpus", corpus, "--index", index).answer()


def test_a_lost_current_pointer_embeds_nothing_again(corpus: Path, index: Path) -> None:
    folder = current_version(index)
    assert folder is not None
    (index / CURRENT_FILE).unlink()
    FakeDefaultEmbedder.seen = []
    run = cli("info", "--verify", "--corpus", corpus, "--index", index)
    assert run.code == 0, run.err
    assert run.err_lines[0] == (f"{index / CURRENT_FILE} is missing; answering from the "
                                f"newest complete version, {folder.name} (`crampqa index` "
                                "restores the pointer).")
    assert run.out.startswith("OK: ")  # the verdict, first on stdout
    assert not (index / CURRENT_FILE).exists()  # info only reads
    assert FakeDefaultEmbedder.seen == []  # and embeds nothing
    assert cli("ask", QUESTION, "--json", "--corpus", corpus, "--index", index).answer()
    FakeDefaultEmbedder.seen = []
    run = cli("index", "--corpus", corpus, "--index", index)
    assert run.code == 0, run.err
    assert "(up to date: nothing written)" in summary_line(run.err_lines)
    assert current_version(index) == folder  # the pointer is back
    assert FakeDefaultEmbedder.seen == []  # nothing was embedded again
    run = cli("ask", QUESTION, "--json", "--corpus", corpus, "--index", index)
    assert run.answer() and run.err == ""


def test_article_refuses_unknown_and_repeated_parameters(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    qa = CrampQA.open(folder, tmp_path / "index", embedder=FakeEmbedder())
    source = qa.ask("calf cramps").passages[0].source_id
    with TestClient(create_app(qa, warm_up=False, follow_index=False),
                    base_url="http://127.0.0.1:8765") as client:
        assert client.get("/api/article", params={"source": source}).status_code == 200
        cases = {
            (("source", source), ("extra", "1")): "Unknown parameter 'extra'; use 'source'.",
            (("source", source), ("source", source)):
                "The parameter 'source' was given more than once.",
        }
        for params, message in cases.items():
            response = client.get("/api/article", params=list(params))
            assert response.status_code == 422
            assert response.json() == {"error": "bad_input", "message": message}


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("Night cramps at night are common in older adults.\n")
    (folder / "b.png").write_bytes(b"\x89PNG")
    run = cli("index", "--corpus", folder, "--index", tmp_path / "index")
    assert run.code == 0, run.err
    line = summary_line(run.err_lines)
    assert line.startswith("Indexed 1 document into 1 passage (1 added, ")
    assert "; 1 file skipped)" in line
