"""Reading corpora: folders, file types, encodings, links, skipped files, BEIR input,
and files that change while they are indexed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.config import IndexSettings
from crampqa.corpus import decode_bytes, html_to_text
from crampqa.store import current_version, load_version
from tests.conftest import FakeDefaultEmbedder
from tests.support import (
    HTML,
    QUESTION,
    Run,
    ask_json,
    cli,
    cli_lines,
    mixed_tree,
    run_index,
    summary_line,
    texts_of,
    version,
    write,
    write_beir,
)

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- corpora ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["index", "ask"])
def test_missing_corpus_folder(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus"
    args: list[str | Path] = [command, *([QUESTION] if command == "ask" else []),
                              "--corpus", missing, "--index", tmp_path / "index"]
    assert cli(*args).error(3) == f"Corpus folder not found: {missing} (use --corpus DIR)."
    assert not (tmp_path / "index").exists() or not list((tmp_path / "index").glob("v-*"))


@pytest.mark.parametrize("command", ["index", "ask"])
def test_empty_corpus_folder(command: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args: list[str | Path] = [command, *([QUESTION, "--json"] if command == "ask" else []),
                              "--corpus", empty, "--index", tmp_path / "index"]
    run = cli(*args)
    assert run.error(3, "corpus_error" if command == "ask" else None) == (
        f"No readable documents in {empty} (supported: .txt, .md, .html, BEIR corpus.jsonl); "
        "0 file(s) skipped.")


def _index_with(corpus: Path, tmp_path: Path) -> Run:
    run = cli("index", "--corpus", corpus, "--index", tmp_path / "index")
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    return run


def test_binary_files_are_skipped(corpus_copy: Path, tmp_path: Path) -> None:
    (corpus_copy / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (corpus_copy / "blob.md").write_bytes(bytes(range(1, 256)) * 4)  # no NUL byte at all
    (corpus_copy / "image.png").write_bytes(b"\x89PNG\r\n")
    run = _index_with(corpus_copy, tmp_path)
    assert "skipped photo.txt: not text (binary data (NUL bytes))" in run.err_lines
    assert "skipped blob.md: not text (binary data (control characters))" in run.err_lines
    assert "skipped image.png: unsupported file type '.png'" in run.err_lines
    assert "Indexed 5 documents" in run.err
    ids = {s["doc_id"] for s in json.loads(cli("sources", "--json", "--index",
                                               tmp_path / "index").out)}
    assert len(ids) == 5 and not ids & {"photo", "blob", "image"}


@pytest.mark.parametrize(("name", "data"), [
    ("latin1.txt", "Crampes nocturnes : le magnésium aide, dit-on. Zorblax café."
     .encode("latin-1")),
    ("cp1252.md", "Night cramps \u2013 \u201cZorblax\u201d helps, they say.".encode("cp1252")),
    ("utf16le.txt", "\ufeffZorblax relieves night cramps in the calf, they say. Ωμέγα."
     .encode("utf-16-le")),
    ("utf16be.txt", "\ufeffZorblax relieves night cramps in the calf, they say. Ωμέγα."
     .encode("utf-16-be")),
    ("utf32.txt", "Zorblax relieves night cramps in the calf, they say.".encode("utf-32")),
], ids=["latin-1", "cp1252", "utf-16-le-bom", "utf-16-be-bom", "utf-32-bom"])
def test_other_encodings_are_decoded(name: str, data: bytes, corpus_copy: Path,
                                     tmp_path: Path) -> None:
    (corpus_copy / name).write_bytes(data)
    _index_with(corpus_copy, tmp_path)
    answer = cli("ask", "zorblax", "--json", "-k", "1", "--index", tmp_path / "index",
                 "--corpus", corpus_copy).answer()
    top = answer["passages"][0]
    assert top["doc_id"] == Path(name).stem
    text = texts_of(corpus_copy)[top["doc_id"]]
    assert text == decode_bytes(data) and "\x00" not in text and "Zorblax" in text
    assert top["text"] == text[top["start"] : top["end"]]
    if name == "latin1.txt":
        assert "magnésium" in top["text"]


def test_zero_byte_and_blank_files_are_skipped(corpus_copy: Path, tmp_path: Path) -> None:
    (corpus_copy / "zero.txt").write_bytes(b"")
    (corpus_copy / "blank.md").write_bytes(b" \n\t\r\n")
    run = _index_with(corpus_copy, tmp_path)
    assert "skipped zero.txt: empty file" in run.err_lines
    assert "skipped blank.md: empty file" in run.err_lines
    only = tmp_path / "only"
    only.mkdir()
    (only / "zero.txt").write_bytes(b"")
    assert cli("index", "--corpus", only, "--index", tmp_path / "i2").error(3).endswith(
        "1 file(s) skipped.")


def test_symlinks_leading_outside_the_corpus_are_not_followed(corpus_copy: Path,
                                                              tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Zorblax secret outside the corpus.\n", "utf-8")
    (corpus_copy / "link.txt").symlink_to(outside / "secret.txt")
    (corpus_copy / "linked-dir").symlink_to(outside, target_is_directory=True)
    (corpus_copy / "loop.txt").symlink_to(corpus_copy / "loop.txt")
    (corpus_copy / "inside.txt").symlink_to(corpus_copy / "001_3d8ed29e24e925cb.txt")
    (corpus_copy / "sources.json").unlink()
    (corpus_copy / "sources.json").symlink_to(outside / "sources.json")
    (outside / "sources.json").write_text('{"001_3d8ed29e24e925cb": "Planted title"}', "utf-8")
    run = _index_with(corpus_copy, tmp_path)
    assert "skipped link.txt: symlink leading outside the corpus folder" in run.err_lines
    assert "skipped loop.txt: broken symlink" in run.err_lines
    assert "skipped sources.json: symlink leading outside the corpus folder" in run.err_lines
    folder = version(tmp_path / "index")
    stored = (folder / "documents.jsonl").read_text(encoding="utf-8")
    assert "Zorblax" not in stored and "Planted title" not in stored
    ids = {d.doc_id for d in load_version(folder).documents}
    assert "inside" in ids and not ids & {"link", "linked-dir/secret", "loop"}


class _ChangingEmbedder(FakeDefaultEmbedder):
    """Appends to a corpus file while the build is embedding."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = False

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not self.changed:
            self.changed = True
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\nQuinine was once tried for night cramps.\n")
        return super().encode(texts, batch_size)


def test_file_changing_while_indexing_gives_a_consistent_index(corpus_copy: Path,
                                                               tmp_path: Path) -> None:
    doc = corpus_copy / "001_3d8ed29e24e925cb.txt"
    before = doc.read_bytes()
    CrampQA.build(corpus_copy, tmp_path / "index", embedder=_ChangingEmbedder(doc))
    assert doc.read_bytes() != before
    data = load_version(version(tmp_path / "index"), verify_full=True)
    stored = data.documents[data.doc_index["001_3d8ed29e24e925cb"]]
    assert stored.text == before.decode("utf-8")  # what was read, as one snapshot
    assert stored.sha256 == hashlib.sha256(before).hexdigest()
    assert data.manifest.corpus.documents["001_3d8ed29e24e925cb"] == stored.sha256
    for row in range(len(data.passages)):
        start, end = data.passages.span(row)
        assert data.passages.text(row) == data.passages.doc(row).text[start:end]


def test_file_changed_while_indexing_is_picked_up_next_time(corpus_copy: Path,
                                                            tmp_path: Path) -> None:
    doc = corpus_copy / "001_3d8ed29e24e925cb.txt"
    CrampQA.build(corpus_copy, tmp_path / "index", embedder=_ChangingEmbedder(doc))
    qa = CrampQA.open(corpus_copy, tmp_path / "index")
    assert qa.build_summary is not None and qa.build_summary.changed == 1




# ---- inputs ----------------------------------------------------------------------------


def test_mixed_tree_gets_stable_relative_path_ids(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    err = run_index(corpus, idx)
    assert summary_line(err).startswith("Indexed 5 documents")
    code, out, _ = cli_lines("sources", "--json", "--index", idx, "--corpus", corpus)
    assert code == 0
    ids = {d["doc_id"]: d["path"] for d in json.loads(out)}
    # relative path without suffix; the same stem with two suffixes keeps the suffix
    assert ids == {
        "calf": "calf.txt",
        "minerals/magnesium": "minerals/magnesium.md",
        "minerals/deep/potassium": "minerals/deep/potassium.txt",
        "leaflets/night.html": "leaflets/night.html",
        "leaflets/night.md": "leaflets/night.md",
    }
    answer = ask_json(corpus, idx, "bananas potassium electrolyte", k=1)
    assert answer["passages"][0]["doc_id"] == "minerals/deep/potassium"
    assert answer["passages"][0]["source_id"].startswith("minerals/deep/potassium#")

    # a new file elsewhere in the tree changes no existing ID
    write(corpus / "aaa" / "first.txt", "Hydration\n\nDrink water during long runs.\n")
    err = run_index(corpus, idx)
    assert "(1 added, 0 changed, 5 unchanged, 0 removed" in summary_line(err)
    qa = CrampQA.open(corpus, idx)
    assert {s["doc_id"] for s in qa.sources()} == set(ids) | {"aaa/first"}
    assert qa.ask("bananas potassium electrolyte", k=1).passages[0].doc_id == \
        "minerals/deep/potassium"


def test_html_visible_text_is_extracted_stored_and_cited_exactly(tmp_path: Path) -> None:
    corpus, idx = tmp_path / "corpus", tmp_path / "index"
    write(corpus / "leaflet.html", HTML)
    write(corpus / "other.txt", "Spinach\n\nSpinach is a leafy vegetable.\n")
    run_index(corpus, idx)
    qa = CrampQA.open(corpus, idx)
    text = qa.document_text("leaflet")
    assert text == html_to_text(HTML)[0]
    assert "Quinine is no longer advised for ordinary night cramps." in text
    assert "Stretch the calf before bed." in text
    for hidden in ("<", "zorblaxscript", "hiddenscriptword", "noscriptword", "color: red"):
        assert hidden not in text
    assert {s["doc_id"]: s["title"] for s in qa.sources()}["leaflet"] == "Night cramps leaflet"
    # the extracted text is what the index stores, so citations can be checked later
    stored = {}
    folder = current_version(idx)
    assert folder is not None
    for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        stored[row["doc_id"]] = row["text"]
    assert stored["leaflet"] == text
    answer = ask_json(corpus, idx, "is quinine advised for night cramps", k=3)
    top = answer["passages"][0]
    assert top["doc_id"] == "leaflet" and "Quinine is no longer advised" in top["text"]
    for p in answer["passages"]:
        assert p["text"] == stored[p["doc_id"]][p["start"] : p["end"]]
        for lo, hi in p["highlights"]:
            assert p["start"] <= lo < hi <= p["end"]
    # words that only occur in scripts are not searchable
    data = load_version(folder)
    every = " ".join(data.passages.text(r) for r in range(len(data.passages)))
    assert "hiddenscriptword" not in every and "zorblaxscript" not in every


def test_skipped_files_get_one_line_each_and_are_counted(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    write(corpus / "minerals" / "scan.pdf", b"%PDF-1.4 binary")
    write(corpus / "minerals" / "deep" / "empty.md", b"")
    write(corpus / "leaflets" / "broken.txt", b"abc\x00\x01\x02def")
    write(corpus / "leaflets" / "blank.html", "<html><script>x()</script></html>")
    err = run_index(corpus, idx)
    skipped = sorted(line for line in err if line.startswith("skipped "))
    assert skipped == [
        "skipped leaflets/blank.html: no visible text",
        "skipped leaflets/broken.txt: not text (binary data (NUL bytes))",
        "skipped minerals/deep/empty.md: empty file",
        "skipped minerals/scan.pdf: unsupported file type '.pdf'",
    ]
    assert "4 files skipped" in summary_line(err)
    assert summary_line(err).startswith("Indexed 5 documents")
    manifest = load_version(current_version(idx)).manifest  # type: ignore[arg-type]
    assert len(manifest.corpus.skipped) == 4
    summary = CrampQA.build(corpus, tmp_path / "api", settings=IndexSettings())
    assert sorted(path for path, _ in summary.skipped) == [
        "leaflets/blank.html", "leaflets/broken.txt", "minerals/deep/empty.md",
        "minerals/scan.pdf"]
    assert summary.documents == 5




def test_beir_corpus_jsonl_gz_is_indexed_and_updated_incrementally(tmp_path: Path) -> None:
    corpus, idx = tmp_path / "beir", tmp_path / "index"
    docs = [
        {"_id": "d1", "title": "Leg cramps", "text": "Leg cramps often strike at night."},
        {"_id": "d2", "title": "", "text": "Magnesium glycinate is gentle on the stomach."},
        {"_id": "d3", "title": "Potassium", "text": "Bananas contain potassium."},
    ]
    write_beir(corpus / "corpus.jsonl.gz", docs)
    write(corpus / "queries.jsonl", '{"_id": "q1", "text": "leg cramps"}\n')
    err = run_index(corpus, idx)
    assert "Indexed 3 documents" in summary_line(err)
    qa = CrampQA.open(corpus, idx)
    assert {s["doc_id"] for s in qa.sources()} == {"d1", "d2", "d3"}
    assert qa.document_text("d1") == "Leg cramps\n\nLeg cramps often strike at night."
    assert qa.document_text("d2") == "Magnesium glycinate is gentle on the stomach."
    answer = ask_json(corpus, idx, "magnesium glycinate stomach", k=2)
    assert answer["passages"][0]["doc_id"] == "d2"
    for p in answer["passages"]:
        assert p["text"] == qa.document_text(p["doc_id"])[p["start"] : p["end"]]

    docs[2]["text"] = "Bananas and dried apricots contain potassium."
    docs.append({"_id": "d4", "title": "Sodium", "text": "Sweat carries salt away."})
    write_beir(corpus / "corpus.jsonl.gz", [docs[0], docs[2], docs[3]])  # d2 removed
    FakeDefaultEmbedder.seen = []
    err = run_index(corpus, idx)
    assert "(1 added, 1 changed, 1 unchanged, 1 removed" in summary_line(err)
    assert "apricots" in " ".join(FakeDefaultEmbedder.seen)
    assert "strike at night" not in " ".join(FakeDefaultEmbedder.seen)
