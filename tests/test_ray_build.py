"""`crampqa index --engine ray`: the same index version as a local build.

The tests marked ``ray`` build on the running Ray head named by ``CRAMPQA_RAY_ADDRESS``
(HOST:PORT); ``.ci/run`` starts one, loopback only, and stops it at the end. Without
the variable they skip. They use the real model: the point is that the vectors Ray's
workers make are the local build's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.chunking import chunk_text
from crampqa.config import BuildEngine, ChunkSettings, EngineSettings, IndexSettings
from crampqa.corpus import read_corpus
from crampqa.documents import embed_documents, has_title
from crampqa.errors import InputError
from crampqa.indexing import LocalRunner, embed, plan_build
from crampqa.ray_build import _chunk_from_json, _chunk_to_json
from crampqa.store import current_version, load_version
from tests.conftest import CORPUS, FakeEmbedder, run_main

QUESTIONS = [
    "why do my calves cramp at night",
    "which blood test shows my real magnesium level",
    "can low vitamin D cause muscle pain",
    "what is the capital of France",
]
#: Files of a version that must be byte for byte the local build's.
SAME_BYTES = ("passages.npy", "sentences.npy", "documents.jsonl")


# ---- without a Ray head ----------------------------------------------------------------
def test_local_build_never_imports_ray(tmp_path: Path) -> None:
    """`crampqa index` without --engine (fake model) leaves Ray unimported."""
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from crampqa.config import MODEL_NAME
        from crampqa.embedding import EMBEDDERS
        from tests.conftest import FakeDefaultEmbedder
        EMBEDDERS[MODEL_NAME] = FakeDefaultEmbedder
        from crampqa.cli import main
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                main(["index", "--corpus", {str(CORPUS)!r}, "--index",
                      {str(tmp_path / "index")!r}])
            except SystemExit as exit:
                assert not exit.code, exit.code
        print(json.dumps(sorted(m for m in sys.modules if m == "ray" or
                                m.startswith("ray.") or m == "pyarrow")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAMPQA_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parent.parent, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert current_version(tmp_path / "index") is not None


@pytest.mark.parametrize("extra", [[], ["--document-vectors"]])
def test_engine_ray_without_ray_installed_says_how_to_install(
    fake_default_model: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    extra: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = run_main("index", "--corpus", CORPUS, "--index", tmp_path / "index",
                            "--engine", "ray", *extra)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "pip install 'crampqa[ray]'" in lines[0]
    assert not (tmp_path / "index").exists()  # failed before anything was read or written


@pytest.mark.parametrize(("args", "needle"), [
    (["--engine", "spark"], "Unknown --engine 'spark' (choose local or ray)."),
    (["--address", "127.0.0.1:6379"], "--address needs --engine ray."),
    (["--engine", "ray", "--address", "nohost"], "--address must be HOST:PORT"),
    (["--engine", "ray", "--workers", "0"], "workers must be a whole number of at least 1"),
])
def test_bad_engine_options_are_one_line_input_errors(
    fake_default_model: None, tmp_path: Path, args: list[str], needle: str
) -> None:
    code, _, err = run_main("index", "--corpus", CORPUS, "--index", tmp_path / "index", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_engine_settings_api() -> None:
    assert EngineSettings().engine is BuildEngine.LOCAL
    assert EngineSettings("ray", address="head:6379").address == "head:6379"
    with pytest.raises(InputError):
        EngineSettings("local", address="head:6379")


def test_chunks_travel_as_json_unchanged() -> None:
    """What a chunking task sends back decodes to exactly the chunks made here."""
    for path in sorted(CORPUS.glob("*.txt")):
        chunks = chunk_text(path.read_text(encoding="utf-8"), ChunkSettings())
        assert chunks
        decoded = [_chunk_from_json(item)
                   for item in json.loads(json.dumps([_chunk_to_json(c) for c in chunks]))]
        assert decoded == chunks


class FakeRay:
    """Stands in for the ``ray`` module: records connects and disconnects."""

    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.calls: list[str] = []

    def is_initialized(self) -> bool:
        return self.connected

    def init(self, **_: object) -> None:
        self.calls.append("init")
        self.connected = True

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        self.connected = False


@pytest.mark.parametrize("connected", [True, False])
def test_a_build_keeps_the_callers_own_ray_connection(
    monkeypatch: pytest.MonkeyPatch, connected: bool
) -> None:
    """A program already connected to Ray keeps its connection after a build (and its
    Ray Data settings); a build that connected itself disconnects at the end."""
    import types

    fake = FakeRay(connected)
    ray_module = types.ModuleType("ray")
    for name in ("is_initialized", "init", "shutdown"):
        setattr(ray_module, name, getattr(fake, name))
    context = types.SimpleNamespace(enable_progress_bars=True, print_on_execution_start=True)
    data_module = types.ModuleType("ray.data")
    data_module.DataContext = types.SimpleNamespace(  # type: ignore[attr-defined]
        get_current=lambda: context)
    ray_module.data = data_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", ray_module)
    monkeypatch.setitem(sys.modules, "ray.data", data_module)
    from crampqa.ray_build import ray_runner

    with ray_runner(EngineSettings("ray"), "model") as runner:
        assert runner is not None
        assert context.enable_progress_bars is False
    assert context.enable_progress_bars is True and context.print_on_execution_start is True
    assert fake.calls == ([] if connected else ["init", "shutdown"])
    assert fake.connected is connected


class RecordingRunner:
    """A runner standing in for Ray's: chunks travel through JSON as they do from Ray's
    tasks, and every document and text sent out is recorded."""

    def __init__(self) -> None:
        self.documents: list[str] = []
        self.texts: list[str] = []

    def chunk(self, documents, settings):  # type: ignore[no-untyped-def]
        self.documents += [d.doc_id for d in documents]
        return [[_chunk_from_json(item) for item in json.loads(json.dumps(
            [_chunk_to_json(c) for c in chunk_text(d.text, settings)]))] for d in documents]

    def embed(self, embedder, jobs, out, stage, progress):  # type: ignore[no-untyped-def]
        self.texts += [text for _, text in jobs]
        for row, text in jobs:
            out[row] = embedder.encode([text])[0]


def test_a_remote_runner_plans_the_same_version_and_sends_only_changes(
    corpus_copy: Path, fake_settings: IndexSettings
) -> None:
    """plan_build/embed with another runner (as --engine ray uses them) give the local
    plan; an incremental plan sends only the changed document and its texts."""
    documents = read_corpus(corpus_copy).documents
    local = plan_build(documents, fake_settings, None)
    runner = RecordingRunner()
    remote = plan_build(documents, fake_settings, None, runner)
    assert np.array_equal(remote.passages.array, local.passages.array)
    assert np.array_equal(remote.sentences, local.sentences)
    assert remote.passage_jobs == local.passage_jobs
    assert remote.sentence_jobs == local.sentence_jobs
    assert runner.documents == [d.doc_id for d in documents]

    root = corpus_copy.parent / "index"
    CrampQA.build(corpus_copy, root, settings=fake_settings, embedder=FakeEmbedder())
    previous = load_version(current_version(root))  # type: ignore[arg-type]
    changed = documents[2]
    edited = replace(changed, text=changed.text + "\n\nMagnesium helps.", sha256="0" * 64)
    documents = [edited if d is changed else d for d in documents]
    runner = RecordingRunner()
    plan = plan_build(documents, fake_settings, previous, runner)
    passages, _ = embed(plan, FakeEmbedder(), previous, None, runner)  # type: ignore[arg-type]
    assert runner.documents == [changed.doc_id]
    assert (plan.changed, plan.unchanged) == (1, len(documents) - 1)
    assert len(runner.texts) == len(plan.passage_jobs) + len(plan.sentence_jobs)
    assert plan.passage_jobs and all(plan.passages.array[row, 0] == 2
                                     for row, _ in plan.passage_jobs)
    local_plan = plan_build(documents, fake_settings, previous)
    local_passages, _ = embed(local_plan, FakeEmbedder(), previous, None)  # type: ignore[arg-type]
    np.testing.assert_allclose(passages, local_passages, atol=1e-6)

    # titles go through the runner too: only the changed document's (its document vector
    # is its first passage's, embedded above)
    runner = RecordingRunner()
    remote_docs = embed_documents(plan.documents, FakeEmbedder(), runner, plan.passages.docs,
                                  passages, previous)
    assert runner.texts == ([edited.title] if has_title(edited) else [])
    local_docs = embed_documents(plan.documents, FakeEmbedder(), LocalRunner(),
                                 local_plan.passages.docs, local_passages, previous)
    for ours, theirs in zip(remote_docs, local_docs, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


# ---- against a running Ray head -----------------------------------------------------------
@pytest.fixture(scope="session")  # session: skips before the real index is built
def ray_address() -> str:
    address = os.environ.get("CRAMPQA_RAY_ADDRESS")
    if not address:
        why = os.environ.get("CRAMPQA_RAY_UNAVAILABLE")
        pytest.skip(f"no Ray head: {why}" if why else
                    "no Ray head: set CRAMPQA_RAY_ADDRESS=HOST:PORT of a running head "
                    "(.ci/run starts one in a loopback-only network namespace)")
    pytest.importorskip("ray.data", reason="Ray is not installed: pip install 'crampqa[ray]'")
    return address


def _arrays(version: Path, name: str) -> np.ndarray:
    return np.load(version / name, allow_pickle=False)


def _answers(qa: CrampQA) -> list[list[tuple[str, int, int]]]:
    return [[(p.doc_id, p.start, p.end) for p in qa.ask(q, k=5).passages] for q in QUESTIONS]


def _manifest(version: Path) -> dict[str, object]:
    """The manifest but its times and file checksums (BM25's vocabulary file is written in
    a different order by two local builds too; the tables are compared byte for byte)."""
    data = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    data.pop("created")
    data.pop("files")
    data.pop("manifest_sha256", None)  # the checksum of the rest, times included
    if isinstance(data.get("document_level"), dict):
        data["document_level"].pop("created", None)  # when the document vectors were written
    return data


@pytest.mark.ray
@pytest.mark.slow
def test_ray_build_gives_the_local_builds_index(
    ray_address: str, real_index: Path, tmp_path: Path
) -> None:
    local = current_version(real_index)
    assert local is not None
    summary = CrampQA.build(CORPUS, tmp_path / "index", engine="ray", address=ray_address)
    remote = summary.folder
    assert summary.embedded_passages == summary.passages > 0
    for name in SAME_BYTES:
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name
    assert _manifest(remote) == _manifest(local)
    for name in ("embeddings.npy", "sentence_embeddings.npy", "doc_embeddings.npy",
                 "title_embeddings.npy"):  # documents are embedded on the cluster too
        ours, theirs = _arrays(remote, name), _arrays(local, name)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)
    ray_qa = CrampQA.open(CORPUS, tmp_path / "index", auto_build=False)
    local_qa = CrampQA.open(CORPUS, real_index, auto_build=False)
    assert _answers(ray_qa) == _answers(local_qa)


@pytest.mark.ray
@pytest.mark.slow
def test_incremental_ray_build_embeds_only_the_changed_document(
    ray_address: str, real_index: Path, corpus_copy: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(real_index, index)  # the local build of the same five articles
    changed = sorted(corpus_copy.glob("*.txt"))[1]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nMagnesium glycinate is "
                       "a gentle form of magnesium for night-time leg cramps.\n",
                       encoding="utf-8")
    totals: dict[str, int] = {}
    summary = CrampQA.build(corpus_copy, index, engine="ray", address=ray_address,
                            progress=lambda stage, _done, total: totals.__setitem__(stage,
                                                                                     total))
    assert (summary.changed, summary.added, summary.unchanged) == (1, 0, 4)
    fresh = CrampQA.build(corpus_copy, tmp_path / "local")  # what a full local build gives
    passages = np.load(fresh.folder / "passages.npy")
    doc = [d.path for d in CrampQA.open(corpus_copy, index, auto_build=False).data.documents]
    of_changed = int((passages[:, 0] == doc.index(changed.name)).sum())
    assert totals["passages"] == summary.embedded_passages == of_changed
    # a document's vector is its first passage's, so only the changed title is embedded
    assert "documents" not in totals
    assert totals["titles"] == 1
    for name in SAME_BYTES:
        assert (summary.folder / name).read_bytes() == (fresh.folder / name).read_bytes()
    np.testing.assert_allclose(_arrays(summary.folder, "embeddings.npy"),
                               _arrays(fresh.folder, "embeddings.npy"), atol=1e-5)


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_during_a_ray_build_leaves_no_version(
    ray_address: str, corpus_copy: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAMPQA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crampqa.cli", "index", "--corpus", str(corpus_copy),
         "--index", str(index), "--engine", "ray", "--address", ray_address],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    # interrupt once the build speaks (the ONNX build of five articles can finish before
    # its first progress line, so the first line of any kind is the signal)
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        break
    assert seen, "the build printed nothing"
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert rest.strip().splitlines()[-1] == "crampqa: interrupted", rest
    assert current_version(index) is None
    assert not [p for p in index.iterdir() if p.is_dir()], list(index.iterdir())
