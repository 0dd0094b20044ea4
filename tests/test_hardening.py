"""Hardening (issue #7): bad input, damaged indexes, concurrent use, interruptions.

Every case is driven through the CLI (``crampqa.cli.main``, in-process or as a
subprocess) or the Python API, with the fake embedder (tests/conftest.py) mapped to
the default model name so that nothing here loads the real model. Each failure must
end in exactly one ``crampqa: error: …`` line, the documented exit code, the
``{"error", "message"}`` JSON shape with ``--json`` and no traceback
(docs/errors.md lists them all).

Covered elsewhere and not repeated here:
- chunker fuzzing on generated and arbitrary Unicode text:
  tests/test_chunking.py::test_offsets_are_exact_slices_on_generated_text and
  ::test_arbitrary_unicode_never_breaks_the_chunker (a line-separator fuzz is added below);
- a build that raises leaves the previous index: tests/test_store.py::
  test_failed_build_leaves_previous_index; the lock at API level:
  ::test_second_builder_is_refused_while_locked;
- ``k`` out of range and a missing corpus for ``ask``: tests/test_cli.py::
  test_user_mistakes_give_one_line_and_exit_code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crampqa import CrampQA
from crampqa.chunking import chunk_text
from crampqa.cli import main
from crampqa.config import MAX_QUESTION_CHARS, MODEL_NAME, ChunkSettings
from crampqa.corpus import decode_bytes, read_corpus
from crampqa.engine import clean_question
from crampqa.errors import IndexError_, InputError
from crampqa.results import ABSTAIN_MESSAGE
from crampqa.store import CURRENT_FILE, MANIFEST, current_version, load_version, sha256_file
from tests.conftest import CORPUS, FAKE_MODEL, FakeDefaultEmbedder, FakeEmbedder, run_main

ROOT = Path(__file__).resolve().parent.parent
REBUILD = "run `crampqa index --rebuild`"
QUESTION = "why do my calves cramp at night"


# ---- helpers ---------------------------------------------------------------------------


@dataclass
class Run:
    """What one CLI invocation did."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def error(self, code: int, error: str | None = None) -> str:
        """Assert a one-line failure with exit ``code``; return the message."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.out + self.err
        lines = self.err_lines
        assert len(lines) == 1, lines
        assert lines[0].startswith("crampqa: error: ")
        message = lines[0].removeprefix("crampqa: error: ")
        if error is not None:  # --json: the same message as one JSON object on stdout
            assert json.loads(self.out) == {"error": error, "message": message}
        return message

    def answer(self) -> dict[str, Any]:
        """Assert success and return the ``--json`` answer."""
        assert self.code == 0, (self.code, self.err)
        assert "Traceback" not in self.err
        data = json.loads(self.out)
        assert isinstance(data, dict)
        return data


def cli(*args: str | Path) -> Run:
    """Run ``crampqa ARGS`` in this process, capturing its output."""
    return Run(*run_main(*args))


def texts_of(corpus: Path) -> dict[str, str]:
    return {d.doc_id: d.text for d in read_corpus(corpus).documents}


def assert_verbatim(answer: dict[str, Any], texts: dict[str, str]) -> None:
    for p in answer["passages"]:
        assert p["text"] == texts[p["doc_id"]][p["start"] : p["end"]]


def version(index: Path) -> Path:
    folder = current_version(index)
    assert folder is not None
    return folder


def rewrite_checksums(folder: Path) -> None:
    """Make the manifest agree with the files again (a careful attacker's move)."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for rel, info in manifest["files"].items():
        target = folder / rel
        if target.exists():
            info.update(sha256=sha256_file(target), size=target.stat().st_size)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def pickle_bomb(marker: Path) -> bytes:
    """Protocol-0 pickle bytes that create ``marker`` when unpickled (hand-written)."""
    return f"cbuiltins\nopen\n(V{marker}\nVw\ntR.".encode()


def object_npy(marker: Path) -> bytes:
    """An .npy file holding an object array whose payload is :func:`pickle_bomb`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buffer.getvalue() + pickle_bomb(marker)


# ---- fixtures --------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("fake_default_model")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real corpus (a copy) and its index, built once with the fake embedder."""
    root = tmp_path_factory.mktemp("hardening")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    CrampQA.build(corpus, root / "index", embedder=FakeDefaultEmbedder())
    return corpus, root / "index"


@pytest.fixture
def corpus(base: tuple[Path, Path]) -> Path:
    """The corpus of ``base`` (do not modify: use ``corpus_copy`` for that)."""
    return base[0]


@pytest.fixture
def index(base: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the base index, free to damage."""
    target = tmp_path / "index"
    shutil.copytree(base[1], target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def module_qa(base: tuple[Path, Path]) -> CrampQA:
    return CrampQA.open(base[0], base[1], auto_build=False, embedder=FakeDefaultEmbedder())


BOOT = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.conftest import FakeDefaultEmbedder
from crampqa.config import MODEL_NAME
from crampqa.embedding import EMBEDDERS

gate = os.environ.get("HQ_GATE", "")
marker = Path(os.environ.get("HQ_MARKER", "/nonexistent/marker"))
release = Path(os.environ.get("HQ_RELEASE", "/nonexistent/release"))


def hold():
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not release.exists():
        if time.monotonic() > deadline:
            raise SystemExit("gate never released")
        time.sleep(0.02)


class Gated(FakeDefaultEmbedder):
    def encode(self, texts, batch_size=64):
        if gate == "embed":
            hold()
        return super().encode(texts, batch_size)


EMBEDDERS[MODEL_NAME] = Gated
if gate == "written":  # after the arrays and documents.jsonl are written
    import crampqa.indexing as ix
    real_build = ix.LexicalIndex.build
    def build(texts):
        hold()
        return real_build(texts)
    ix.LexicalIndex.build = build
if gate == "commit":  # inside commit_version, manifest written, before the rename
    import crampqa.store as st
    real_tree = st._fsync_tree
    def tree(folder):
        hold()
        real_tree(folder)
    st._fsync_tree = tree
from crampqa.cli import main
main(sys.argv[1:])
"""


class Crampqa:
    """``crampqa`` in a subprocess, with the fake embedder and an optional gate."""

    def __init__(self, workdir: Path) -> None:
        self.script = workdir / "boot.py"
        self.script.write_text(BOOT.format(root=str(ROOT)), encoding="utf-8")
        self.workdir = workdir

    def env(self, gate: str = "", name: str = "gate") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRAMPQA_", "HQ_"))}
        env.update(HQ_GATE=gate, HQ_MARKER=str(self.workdir / f"{name}.held"),
                   HQ_RELEASE=str(self.workdir / f"{name}.release"))
        return env

    def start(self, *args: str | Path, gate: str = "", name: str = "gate",
              prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
        return subprocess.Popen([*prefix, sys.executable, str(self.script), *map(str, args)],
                                env=self.env(gate, name), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.workdir)

    def wait_held(self, proc: subprocess.Popen[str], name: str = "gate") -> None:
        marker = self.workdir / f"{name}.held"
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"exited early: {proc.communicate()}")
            assert time.monotonic() < deadline, "the gated build never got there"
            time.sleep(0.02)

    def release(self, name: str = "gate") -> None:
        (self.workdir / f"{name}.release").touch()


@pytest.fixture
def sub(tmp_path: Path) -> Iterator[Crampqa]:
    helper = Crampqa(tmp_path)
    yield helper
    helper.release()  # never leave a gated process waiting


def finish(proc: subprocess.Popen[str]) -> Run:
    out, err = proc.communicate(timeout=120)
    return Run(proc.returncode, out, err)


# ---- 1. questions ----------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", " ", "\t\n  \r", "\x00\x00", "\u2028\u3000\x1b"],
                         ids=["empty", "space", "whitespace", "nul-only", "separators"])
def test_blank_question_is_refused_in_one_line(question: str, index: Path) -> None:
    run = cli("ask", question, "--json", "--index", index)
    assert run.error(2, "bad_input") == ("The question is empty; ask something like "
                                         "'why do my calves cramp at night'.")


def test_question_of_100000_characters_is_refused_quickly(index: Path, corpus: Path,
                                                          module_qa: CrampQA) -> None:
    limit = f"the limit is {MAX_QUESTION_CHARS}."
    for question in ("a" * 100_000, "why cramp " * 10_000, "🦵" * 100_001):
        started = time.perf_counter()
        run = cli("ask", question, "--json", "--index", index, "--corpus", corpus)
        assert time.perf_counter() - started < 2
        shown = len(question) if len(question) > 50 * MAX_QUESTION_CHARS else \
            len(" ".join(question.split()))  # counted after cleaning, unless it is huge
        assert run.error(2, "bad_input") == f"The question is {shown} characters long; {limit}"
        with pytest.raises(InputError, match=limit):
            module_qa.ask(question)
    # the limit counts characters after cleaning: exactly MAX_QUESTION_CHARS is accepted
    assert cli("ask", "c" * MAX_QUESTION_CHARS, "--json", "--index", index,
               "--corpus", corpus).answer()["abstained"] is True
    run = cli("ask", "c" * (MAX_QUESTION_CHARS + 1), "--index", index, "--corpus", corpus)
    assert run.error(2).endswith(limit)


def test_control_characters_and_nul_become_spaces(index: Path, corpus: Path) -> None:
    question = "why\x00do my\x07calves\x1b cramp\r\n at\x7fnight\x85\ud800?"
    answer = cli("ask", question, "--json", "-k", "2", "--index", index,
                 "--corpus", corpus).answer()
    assert answer["question"] == "why do my calves cramp at night ?"
    assert len(answer["passages"]) == 2
    assert_verbatim(answer, texts_of(corpus))
    assert clean_question(question) == answer["question"]


@pytest.mark.parametrize("question", [
    "¿Por qué tengo calambres en las piernas por la noche?",
    "为什么我晚上小腿抽筋",
    "Почему у меня судороги в ногах ночью?",
    "لماذا أعاني من تشنجات في الساق ليلا",
], ids=["spanish", "chinese", "russian", "arabic"])
def test_non_english_question_is_answered_by_abstaining(question: str, index: Path,
                                                        corpus: Path) -> None:
    """The corpus is English: words it never uses push confidence under the threshold."""
    answer = cli("ask", question, "--json", "--index", index, "--corpus", corpus).answer()
    assert answer["question"] == question
    assert answer["abstained"] is True and answer["message"] == ABSTAIN_MESSAGE
    assert answer["passages"] and all(p["weak"] for p in answer["passages"])
    assert_verbatim(answer, texts_of(corpus))


def test_emoji_only_question_abstains(index: Path, corpus: Path) -> None:
    answer = cli("ask", "🦵💥😣", "--json", "--index", index, "--corpus", corpus).answer()
    assert answer["abstained"] is True and answer["message"] == ABSTAIN_MESSAGE
    run = cli("ask", "🦵💥😣", "--index", index, "--corpus", corpus)  # the terminal layout
    assert run.code == 0 and ABSTAIN_MESSAGE in run.out and "weak match" in run.out


def test_bad_options_give_the_json_error_shape(index: Path) -> None:
    """Click's own usage errors (bad -k, unknown option) follow the same rules."""
    run = cli("ask", QUESTION, "-k", "many", "--json", "--index", index)
    assert run.error(2, "bad_input").startswith("Invalid value for '-k' / '--top': ")
    assert cli("ask", QUESTION, "--jsn", "--index", index).error(2).startswith(
        "No such option: --jsn")
    assert cli("ask", "--index", index).error(2) == "Missing argument 'question'."
    bare = cli()  # `crampqa` alone shows the help
    assert bare.code == 0 and "Usage: crampqa" in bare.out and bare.err == ""


def test_unexpected_failure_is_one_line_without_traceback(index: Path, corpus: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", "/full/disk")

    monkeypatch.setattr("crampqa.engine.CrampQA.ask", boom)
    run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus)
    assert run.error(1, "internal_error") == (
        "System error: No space left on device (/full/disk); check the disk and the "
        "folder permissions, then try again.")
    monkeypatch.setattr("crampqa.engine.CrampQA.ask", lambda *a, **k: 1 / 0)
    message = cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(1)
    assert message.startswith("Unexpected ZeroDivisionError: division by zero; please report")
    monkeypatch.setenv("CRAMPQA_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["ask", QUESTION, "--index", str(index), "--corpus", str(corpus)])


# ---- 2. corpora ------------------------------------------------------------------------


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


# ---- 3. indexes ------------------------------------------------------------------------


def test_every_truncated_or_corrupted_index_file_is_detected(index: Path,
                                                             corpus: Path) -> None:
    folder = version(index)
    files = sorted(json.loads((folder / MANIFEST).read_text())["files"])
    assert "passages.npy" in files and "bm25/vocab.index.json" in files
    for rel in files:
        path = folder / rel
        good = path.read_bytes()
        damages = {
            "truncated": (good[: len(good) // 2], "is truncated or damaged (size"),
            "emptied": (b"", "is truncated or damaged (size 0,"),
            "corrupted": (bytes([good[len(good) // 2] ^ 0xFF]).join(
                [good[: len(good) // 2], good[len(good) // 2 + 1 :]]),
                "is corrupted (checksum mismatch)"),
        }
        for how, (data, expected) in damages.items():
            path.write_bytes(data)
            message = cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(4)
            assert message.startswith(f"Index file {rel} {expected}"), (rel, how, message)
            assert message.endswith(f"; {REBUILD}."), (rel, how, message)
        path.unlink()
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"Index file {rel} is missing in {folder}; {REBUILD}.")
        path.write_bytes(good)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


def test_large_files_are_hashed_by_info_verify(index: Path, corpus: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Files above the open-time hashing limit (e.g. the ONNX model) are only size-checked
    when asking; `crampqa info --verify` hashes them too."""
    import crampqa.store

    monkeypatch.setattr(crampqa.store, "FULL_HASH_MAX", 64)
    path = version(index) / "embeddings.npy"
    good = path.read_bytes()
    assert len(good) > 64
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # same size, one bit pattern off
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    message = cli("info", "--verify", "--index", index, "--corpus", corpus).error(4)
    assert message == f"Index file embeddings.npy is corrupted (checksum mismatch); {REBUILD}."
    path.write_bytes(good)
    run = cli("info", "--verify", "--index", index, "--corpus", corpus)
    assert run.code == 0 and "match their SHA-256 checksums" in run.err


@pytest.mark.parametrize("command", [["ask", QUESTION, "--json"], ["sources", "--json"],
                                     ["info"]], ids=["ask", "sources", "info"])
def test_damaged_index_fails_the_same_way_for_every_command(command: list[str],
                                                            index: Path) -> None:
    (version(index) / "sentences.npy").write_bytes(b"\x93NUMPY")
    run = cli(*command, "--index", index)
    message = run.error(4, "index_error" if "--json" in command else None)
    assert message.startswith("Index file sentences.npy is truncated or damaged")


def test_damaged_manifest_and_current_pointer(index: Path) -> None:
    folder = version(index)
    manifest = folder / MANIFEST
    good = manifest.read_text()
    manifest.write_text(good[: len(good) // 2])
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest {manifest} is damaged; {REBUILD}.")
    data = json.loads(good)
    del data["model"]
    manifest.write_text(json.dumps(data))
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest {manifest} is damaged (model missing or malformed); {REBUILD}.")
    manifest.unlink()  # missing manifest
    assert cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error") == (
        f"The index in {folder} has no manifest; {REBUILD}.")
    manifest.write_text(good)
    pointer = index / CURRENT_FILE
    pointer.write_text("")
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"{pointer} is damaged; {REBUILD}.")
    pointer.write_text("v-gone\n")
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"Index version v-gone named in {pointer} is missing; {REBUILD}.")


def test_index_command_repairs_a_damaged_index(index: Path, corpus: Path) -> None:
    (version(index) / "passages.npy").write_bytes(b"garbage")
    run = cli("index", "--corpus", corpus, "--index", index)
    assert run.code == 0, run.err
    assert run.err_lines[0].startswith("Full rebuild: the previous index is unusable (Index "
                                       "file passages.npy is truncated or damaged")
    assert run.err_lines[1].startswith("Indexed 5 documents into ")
    load_version(version(index), verify_full=True)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


@pytest.mark.parametrize("stored", [2, 99, "1", None, True], ids=repr)
def test_newer_or_unknown_format_version_is_refused(stored: object, index: Path) -> None:
    folder = version(index)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format_version"] = stored
    (folder / MANIFEST).write_text(json.dumps(manifest))
    message = cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error")
    assert message == (f"The index in {folder} was written by a newer crampqa (format "
                       f"{stored}, this one reads 1); upgrade crampqa or {REBUILD}.")


def test_index_built_with_another_model(corpus: Path, tmp_path: Path,
                                        fake_settings: Any) -> None:
    index = tmp_path / "index"
    CrampQA.build(corpus, index, settings=fake_settings, embedder=FakeEmbedder())
    old = version(index)
    with pytest.raises(IndexError_) as info:  # asked not to build: a clear refusal
        CrampQA.open(corpus, index, auto_build=False)
    assert info.value.message == (f"The index in {index} needs building (the model changed "
                                  f"({FAKE_MODEL} -> {MODEL_NAME})); run `crampqa index`.")
    run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus)
    answer = run.answer()  # otherwise it is rebuilt with the current model, then answers
    assert run.err_lines[0] == (f"Full rebuild: the model changed ({FAKE_MODEL} -> "
                                f"{MODEL_NAME}).")
    assert version(index) != old
    assert load_version(version(index)).manifest.model.name == MODEL_NAME
    assert_verbatim(answer, texts_of(corpus))


def test_read_only_index_folder_answers_but_refuses_to_build(index: Path, corpus: Path,
                                                             sub: Crampqa) -> None:
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere: drop its capabilities for the subprocesses
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    for path in [index, *index.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        answer = finish(sub.start("ask", QUESTION, "--json", "--index", index, "--corpus",
                                  corpus, prefix=prefix)).answer()
        assert_verbatim(answer, texts_of(corpus))
        run = finish(sub.start("index", "--rebuild", "--corpus", corpus, "--index", index,
                               prefix=prefix))
        assert run.error(4) == (f"Cannot write to the index folder {index}: Permission "
                                "denied; choose a writable folder with --index DIR.")
        load_version(version(index), verify_full=True)
    finally:
        for path in [index, *index.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_unwritable_index_folder_while_building(corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails mid-build (full disk) is one line and leaves no debris."""
    index = tmp_path / "index"

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("numpy.save", full)
    assert cli("index", "--corpus", corpus, "--index", index).error(4) == (
        f"Cannot write the index in {index}: No space left on device; free some space or "
        "choose a writable folder with --index DIR.")
    assert current_version(index) is None and not list(index.glob(".tmp-*"))


# ---- 4. concurrency --------------------------------------------------------------------


def _blocked_on_lock(pid: int) -> bool:
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:  # pragma: no cover - not Linux: give it a moment instead
        time.sleep(1.0)
        return True
    return any("->" in line and f" {pid} " in line for line in locks.splitlines())


def test_second_index_run_stops_clearly_and_a_waiting_one_waits(
        index: Path, corpus: Path, sub: Crampqa) -> None:
    before = version(index)
    first = sub.start("index", "--rebuild", "--corpus", corpus, "--index", index, gate="embed")
    sub.wait_held(first)
    assert cli("index", "--corpus", corpus, "--index", index).error(5) == (
        f"Another crampqa process is building the index in {index}; wait for it to finish "
        "and try again.")
    waiting = sub.start("index", "--wait", "--corpus", corpus, "--index", index)
    deadline = time.monotonic() + 60
    while not _blocked_on_lock(waiting.pid):
        assert waiting.poll() is None, waiting.communicate()
        assert time.monotonic() < deadline, "the --wait run never queued on the lock"
        time.sleep(0.05)
    assert version(index) == before
    sub.release()
    first_run, second_run = finish(first), finish(waiting)
    assert first_run.code == 0 and second_run.code == 0, (first_run.err, second_run.err)
    assert "Full rebuild: --rebuild was asked for." in first_run.err_lines
    assert second_run.err_lines[-1].startswith("Indexed 5 documents into ")
    assert "(0 added, 0 changed, 5 unchanged, 0 removed" in second_run.err
    data = load_version(version(index), verify_full=True)
    assert version(index) != before and len(data.passages) > 0
    assert not list(index.glob(".tmp-*"))


def test_asking_during_a_rebuild_answers_from_the_previous_index(
        index: Path, corpus: Path, sub: Crampqa) -> None:
    before = version(index)
    build = sub.start("index", "--rebuild", "--corpus", corpus, "--index", index,
                      gate="written")
    sub.wait_held(build)
    assert list(index.glob(".tmp-v-*"))  # the new version is half-written right now
    run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus)
    answer = run.answer()
    assert run.err == ""  # no build, no waiting: the complete previous version answered
    assert_verbatim(answer, texts_of(corpus))
    assert version(index) == before
    sub.release()
    assert finish(build).code == 0
    assert version(index) != before


def test_asking_a_changed_corpus_during_a_build_uses_the_previous_index(
        index: Path, corpus_copy: Path, sub: Crampqa) -> None:
    build = sub.start("index", "--corpus", corpus_copy, "--index", index, gate="written")
    sub.wait_held(build)
    (corpus_copy / "new.md").write_text("# Potassium\nBananas contain potassium.\n", "utf-8")
    try:
        run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus_copy)
        assert run.answer()["passages"]
        assert "answering from the previous complete version" in run.err
        assert not any(d["doc_id"] == "new" for d in run.answer()["passages"])
    finally:
        sub.release()
        finish(build)


# ---- 5. interruptions ------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["embed", "written", "commit"])
def test_build_killed_with_sigkill_leaves_the_previous_index_usable(
        stage: str, index: Path, corpus: Path, sub: Crampqa) -> None:
    before = version(index)
    build = sub.start("index", "--rebuild", "--corpus", corpus, "--index", index, gate=stage)
    sub.wait_held(build)
    leftovers = list(index.glob(".tmp-v-*"))
    assert leftovers
    if stage == "commit":
        assert (leftovers[0] / MANIFEST).is_file()
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=30)
    assert build.returncode == -signal.SIGKILL
    assert version(index) == before
    run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus)
    assert run.err == "" and run.answer()["passages"]  # answered by the previous version
    assert_verbatim(run.answer(), texts_of(corpus))
    load_version(before, verify_full=True)
    rebuilt = cli("index", "--corpus", corpus, "--index", index)  # the lock died with it
    assert rebuilt.code == 0, rebuilt.err
    assert not list(index.glob(".tmp-v-*")), "the killed build's folder is cleaned up"
    assert version(index) == before and "(up to date: nothing written)" in rebuilt.err


def test_closed_output_pipe_ends_quietly(index: Path, sub: Crampqa) -> None:
    """`crampqa … | head`: the reader leaving early ends it quietly (click exits with 1)."""
    proc = sub.start("sources", "--json", "--index", index)
    assert proc.stdout is not None
    proc.stdout.close()  # before the child can have written anything
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (1, "")


# ---- 6. safety of loading --------------------------------------------------------------


@pytest.mark.parametrize("name", ["passages.npy", "embeddings.npy",
                                  "bm25/data.csc.index.npy"])
def test_object_array_npy_is_refused_and_never_unpickled(name: str, index: Path,
                                                         tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    folder = version(index)
    (folder / name).write_bytes(object_npy(marker))
    assert cli("ask", QUESTION, "--index", index).error(4).startswith(f"Index file {name} is ")
    rewrite_checksums(folder)  # even when the manifest is made to agree
    message = cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error")
    assert message.endswith(f"; {REBUILD}.")
    assert "cannot be read" in message or "damaged" in message
    assert not marker.exists()


def test_planted_pickle_is_refused_and_never_loaded(index: Path, corpus: Path,
                                                    tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    folder = version(index)
    for rel in ("index.pkl", "bm25/retriever.pickle"):
        (folder / rel).write_bytes(pickle_bomb(marker))
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"The index in {folder} holds a file its manifest does not list ({rel}); "
            f"remove it or {REBUILD}.")
        (folder / rel).unlink()
    # listed in the manifest with a right checksum it is still never read
    (folder / "index.pkl").write_bytes(pickle_bomb(marker))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["index.pkl"] = {}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    rewrite_checksums(folder)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    assert not marker.exists()


def test_manifest_paths_outside_the_index_folder_are_refused(index: Path,
                                                             tmp_path: Path) -> None:
    folder = version(index)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not part of the index")
    good = json.loads((folder / MANIFEST).read_text())
    info = {"sha256": sha256_file(outside), "size": outside.stat().st_size}
    for rel in ("../../outside.bin", str(outside)):
        manifest = json.loads(json.dumps(good))
        manifest["files"][rel] = info
        (folder / MANIFEST).write_text(json.dumps(manifest))
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"The index manifest in {folder} names a path outside it or a link ({rel}); "
            f"{REBUILD}.")
    # a listed file swapped for a link to an identical copy outside the folder
    (folder / MANIFEST).write_text(json.dumps(good))
    copy = tmp_path / "passages-copy.npy"
    shutil.copy(folder / "passages.npy", copy)
    (folder / "passages.npy").unlink()
    (folder / "passages.npy").symlink_to(copy)
    assert "names a path outside it or a link (passages.npy)" in cli(
        "ask", QUESTION, "--index", index).error(4)
    # ... or dropped from the manifest so that its checks are skipped
    del good["files"]["passages.npy"]
    (folder / MANIFEST).write_text(json.dumps(good))
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest in {folder} does not list passages.npy; {REBUILD}.")


def test_current_pointer_outside_the_index_folder_is_refused(index: Path,
                                                             tmp_path: Path) -> None:
    pointer = index / CURRENT_FILE
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(version(index), elsewhere)  # a complete, valid version outside
    for name in ("../elsewhere", str(elsewhere), ".", ".."):
        pointer.write_text(name + "\n")
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"{pointer} is damaged; {REBUILD}.")
    (index / "v-link").symlink_to(elsewhere, target_is_directory=True)
    pointer.write_text("v-link\n")
    assert cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error") == (
        f"Index version v-link named in {pointer} leads outside the index folder; {REBUILD}.")


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | Path):
        _OPENED.append(os.path.abspath(args[0]))


@contextlib.contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every file Python opens inside the block (audit hook, installed once)."""
    global _OPENED
    if not getattr(sys, "_crampqa_hardening_hook", False):
        sys.addaudithook(_audit)
        sys._crampqa_hardening_hook = True  # type: ignore[attr-defined]
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def test_passage_store_paths_are_never_followed(index: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("never to be read", encoding="utf-8")
    folder = version(index)
    docs = folder / "documents.jsonl"
    rows = [json.loads(line) for line in docs.read_text(encoding="utf-8").splitlines()]
    rows[0]["path"] = "../../secret.txt"
    rows[1]["path"] = str(secret)
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["corpus"]["dir"] = str(tmp_path / "no-corpus")  # no staleness check to run
    (folder / MANIFEST).write_text(json.dumps(manifest))
    rewrite_checksums(folder)
    with opened_files() as opened:
        qa = CrampQA.open(None, index)
        qa.ask(QUESTION, k=5)
        shown = qa.sources()
    assert {s["path"] for s in shown} >= {"../../secret.txt", str(secret)}  # shown, as data
    mine = [p for p in opened if p.startswith(str(tmp_path))]
    assert mine and all(p.startswith(str(index) + os.sep) for p in mine), mine


# ---- 7. fuzzing ------------------------------------------------------------------------

#: The autouse fixture above is function-scoped; it holds no per-example state.
FIXTURES = [HealthCheck.function_scoped_fixture]
ANY_TEXT = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=60),  # lone surrogates
    st.text(alphabet="\x00\x01\x1b\x7f\x85\t\n\r \u2028\u200b\ufeffé🦵aZ?.", max_size=40),
    st.integers(MAX_QUESTION_CHARS - 2, MAX_QUESTION_CHARS + 2).map(lambda n: "é" * n),
)


def _check_answer(qa: CrampQA, question: str) -> None:
    try:
        answer = qa.ask(question, k=4)
    except InputError as exc:
        assert exc.message.startswith(("The question is empty", "The question is ")), exc
        assert "limit" in exc.message or "empty" in exc.message
        return
    assert answer.question == clean_question(question)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in answer.question)
    assert len(answer.question) <= MAX_QUESTION_CHARS
    assert 1 <= len(answer.passages) <= 4
    for p in answer.passages:
        assert p.text == qa.document_text(p.doc_id)[p.start : p.end]
        assert p.weak == answer.abstained
    assert (answer.message == ABSTAIN_MESSAGE) == answer.abstained
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURES)
@given(ANY_TEXT)
def test_fuzz_question_path_api(module_qa: CrampQA, question: str) -> None:
    _check_answer(module_qa, question)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(ANY_TEXT)
def test_fuzz_question_path_cli(base: tuple[Path, Path], question: str) -> None:
    run = cli("ask", question, "--json", "-k", "2", "--index", base[1], "--corpus", base[0])
    assert run.code in (0, 2), run.err
    if run.code == 2:
        run.error(2, "bad_input")
    else:
        assert_verbatim(run.answer(), texts_of(base[0]))


LINE_SOUP = st.lists(st.sampled_from(
    [*"\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029 \t|-#:.?!aZ1é🦵", "- ", "| a | b |", "Mr. "]),
    max_size=150).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES)
@given(LINE_SOUP)
def test_fuzz_chunker_with_every_line_separator(text: str) -> None:
    for chunk in chunk_text(text, ChunkSettings(max_chars=60)):
        piece = text[chunk.start : chunk.end]
        assert 0 <= chunk.start < chunk.end <= len(text) and piece == piece.strip()
        for s, e in chunk.sentences:
            assert chunk.start <= s < e <= chunk.end
        for span in (chunk.heading, chunk.context):
            assert span is None or 0 <= span[0] < span[1] <= len(text)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES)
@given(st.one_of(st.binary(max_size=300),
                 st.text(max_size=100).map(lambda t: b"\xff\xfe" + t.encode("utf-16-le")),
                 st.text(max_size=100).map(lambda t: t.encode("utf-8"))))
def test_fuzz_decoding_arbitrary_bytes(data: bytes) -> None:
    try:
        text = decode_bytes(data)
    except UnicodeError:
        return  # documented: the file is skipped as "not text"
    assert isinstance(text, str) and "\x00" not in text


def test_fuzz_corpus_of_arbitrary_bytes_never_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    folder = tmp_path / "c"
    folder.mkdir()
    for i in range(40):
        size = int(rng.integers(0, 400))
        (folder / f"f{i}.txt").write_bytes(rng.integers(0, 256, size, dtype=np.uint8)
                                           .tobytes())
    report = read_corpus(folder)
    assert len(report.documents) + len(report.skipped) == 40
    for doc in report.documents:
        assert "\x00" not in doc.text

