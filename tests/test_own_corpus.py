"""Your own documents: an index keeps the corpus it was built from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.errors import CorpusMismatchError
from tests.conftest import CORPUS, FakeDefaultEmbedder, run_main

PLANTS = {
    "watering.md": "# Watering\n\n## How often to water\n\nWater a fern when the top "
                   "centimetre of soil is dry, about twice a week in summer.\n",
    "light.md": "# Light\n\nMost succulents want bright, direct sunlight for six hours a "
                "day; a south window suits them.\n",
    "repotting.md": "# Repotting\n\nRepot a root-bound monstera in spring into a pot "
                    "five centimetres wider.\n",
}


@pytest.fixture
def plants(tmp_path: Path) -> Path:
    """A small folder of someone's own documents."""
    folder = tmp_path / "plants"
    folder.mkdir()
    for name, text in PLANTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default index, moved into ``tmp_path`` (the real corpus stays the default)."""
    import crampqa.config as config

    monkeypatch.setattr(config, "indexes_dir", lambda: tmp_path / "indexes")
    return tmp_path / "indexes" / "default"


def doc_ids(*args: str | Path) -> set[str]:
    code, out, err = run_main("sources", "--json", *args)
    assert code == 0, err
    return {doc["doc_id"] for doc in json.loads(out)}


@pytest.mark.usefixtures("fake_default_model")
def test_index_alone_updates_from_its_own_corpus(plants: Path, tmp_path: Path) -> None:
    idx = tmp_path / "plants-idx"
    assert run_main("index", "--corpus", plants, "--index", idx)[0] == 0
    (plants / "pests.md").write_text("# Pests\n\nWipe aphids off with soapy water.\n",
                                     encoding="utf-8")
    code, _, err = run_main("index", "--index", idx)
    assert code == 0, err
    assert "(1 added, 0 changed, 3 unchanged, 0 removed;" in err
    assert doc_ids("--index", idx) == {"watering", "light", "repotting", "pests"}
    code, out, _ = run_main("ask", "how often should I water my fern", "--json",
                            "--index", idx)
    assert code == 0 and json.loads(out)["passages"][0]["doc_id"] == "watering"


@pytest.mark.usefixtures("fake_default_model")
def test_another_corpus_needs_replace_corpus(plants: Path, tmp_path: Path) -> None:
    idx = tmp_path / "plants-idx"
    assert run_main("index", "--corpus", plants, "--index", idx)[0] == 0
    before = sorted(p.name for p in idx.iterdir())
    for command in (("index",), ("ask", "why do my calves cramp"), ("sources",)):
        code, out, err = run_main(*command, "--corpus", CORPUS, "--index", idx)
        assert code == 4 and out == ""
        assert err.splitlines() == [
            f"crampqa: error: The index in {idx} was built from {plants}, not {CORPUS}; to "
            f"rebuild it from {CORPUS}, run crampqa index --corpus {CORPUS} --index {idx} "
            "--replace-corpus (or give another --index)."]
    assert sorted(p.name for p in idx.iterdir()) == before  # nothing written
    assert doc_ids("--index", idx) == {"watering", "light", "repotting"}
    code, _, err = run_main("index", "--corpus", CORPUS, "--index", idx, "--replace-corpus")
    assert code == 0, err
    assert "(5 added, 0 changed, 0 unchanged, 3 removed;" in err
    assert len(doc_ids("--index", idx)) == 5


@pytest.mark.usefixtures("fake_default_model")
def test_a_moved_corpus_folder(plants: Path, tmp_path: Path) -> None:
    idx = tmp_path / "plants-idx"
    assert run_main("index", "--corpus", plants, "--index", idx)[0] == 0
    plants.rename(tmp_path / "moved")
    code, _, err = run_main("index", "--index", idx)
    assert code == 3
    assert err == (f"crampqa: error: The index in {idx} was built from {plants}, which is "
                   "gone; to rebuild it from another folder, give --corpus DIR "
                   "--replace-corpus.\n")
    assert doc_ids("--index", idx) == {"watering", "light", "repotting"}  # still asked
    # the moved folder holds every document of the index: the same corpus, no option needed
    code, _, err = run_main("index", "--corpus", tmp_path / "moved", "--index", idx)
    assert code == 0, err
    assert run_main("index", "--index", idx)[0] == 0  # and it is remembered


@pytest.mark.usefixtures("fake_default_model")
def test_the_default_index_holds_the_bundled_articles_only(plants: Path,
                                                           bundled: Path) -> None:
    for command in (("index",), ("ask", "how often to water"), ("sources",)):
        code, _, err = run_main(*command, "--corpus", plants)
        assert code == 4
        assert err == (f"crampqa: error: {bundled} is the index of the bundled articles "
                       f"({CORPUS}); index {plants} into its own folder: crampqa index "
                       f"--corpus {plants} --index DIR.\n")
        assert not bundled.exists()
    assert run_main("index", "--corpus", plants, "--index", bundled.parent / "plants")[0] == 0
    assert len(doc_ids()) == 5  # the default index is built from corpus/
    code, _, err = run_main("index", "--corpus", plants, "--replace-corpus")
    assert code == 4 and "is the index of the bundled articles" in err
    assert len(doc_ids()) == 5
    assert doc_ids("--index", bundled.parent / "plants") == {"watering", "light",
                                                             "repotting"}


@pytest.mark.usefixtures("fake_default_model")
def test_the_api_keeps_the_corpus_too(plants: Path, tmp_path: Path) -> None:
    idx = tmp_path / "plants-idx"
    CrampQA.build(plants, idx, embedder=FakeDefaultEmbedder())
    assert CrampQA.build(None, idx, embedder=FakeDefaultEmbedder()).up_to_date
    with pytest.raises(CorpusMismatchError):
        CrampQA.build(CORPUS, idx, embedder=FakeDefaultEmbedder())
    with pytest.raises(CorpusMismatchError):
        CrampQA.open(CORPUS, idx, embedder=FakeDefaultEmbedder())
    summary = CrampQA.build(CORPUS, idx, embedder=FakeDefaultEmbedder(), replace_corpus=True)
    assert (summary.added, summary.removed) == (5, 3)


@pytest.mark.usefixtures("fake_default_model")
def test_a_corpus_declares_its_own_note(plants: Path, tmp_path: Path, index: Path) -> None:
    from crampqa.results import DISCLAIMER

    note = "Verbatim excerpts from our plant notes; ask a nursery about a sick plant."
    (plants / "sources.json").write_text(json.dumps(
        {"_corpus": {"note": note}, "light": {"title": "Light for succulents"}}),
        encoding="utf-8")
    idx = tmp_path / "plants-idx"
    code, out, err = run_main("ask", "how often to water a fern", "--corpus", plants,
                              "--index", idx)
    assert code == 0, err
    assert out.endswith(note + "\n") and "healthcare" not in out
    assert json.loads(run_main("ask", "water", "--json", "--index", idx)[1])[
        "disclaimer"] == note
    assert doc_ids("--index", idx) == {"watering", "light", "repotting"}  # not a document
    # the bundled articles keep the not-medical-advice note
    answer = json.loads(run_main("ask", "why do my calves cramp", "--json", "--index",
                                 index)[1])
    assert answer["disclaimer"] == DISCLAIMER
    # a changed note reaches the index without re-embedding anything
    (plants / "sources.json").write_text(json.dumps({"_corpus": {"note": "Other."}}),
                                         encoding="utf-8")
    assert json.loads(run_main("ask", "water", "--json", "--index", idx)[1])[
        "disclaimer"] == "Other."


@pytest.mark.usefixtures("fake_default_model")
def test_markdown_headings_are_shown_without_their_markers(plants: Path,
                                                           tmp_path: Path) -> None:
    idx = tmp_path / "plants-idx"
    code, out, err = run_main("ask", "how often should I water my fern", "--json",
                              "--corpus", plants, "--index", idx)
    assert code == 0, err
    top = json.loads(out)["passages"][0]
    text = PLANTS["watering.md"]
    assert top["heading"] == "How often to water"
    assert text[top["heading_start"]:top["heading_end"]] == top["heading"]  # verbatim
    code, out, _ = run_main("ask", "how often should I water my fern", "-k", "1",
                            "--index", idx)
    assert "section: How often to water\n" in out and "## " not in out
    code, out, _ = run_main("show", top["source_id"], "--index", idx)
    assert "section: How often to water\n" in out
    data = json.loads(run_main("show", top["source_id"], "--json", "--index", idx)[1])
    assert data["heading"] == "How often to water"
