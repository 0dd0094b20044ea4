"""Helpers shared by the tests that drive crampqa through its CLI and API with the fake
embedder: running the CLI in this process or as a gated subprocess, small corpora, and
damaging an index on purpose."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.corpus import read_corpus
from crampqa.manifest import seal
from crampqa.store import MANIFEST, current_version, sha256_file
from tests.conftest import run_main

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
    path.write_bytes(seal(manifest))  # and seal it with its own checksum again


def pickle_bomb(marker: Path) -> bytes:
    """Protocol-0 pickle bytes that create ``marker`` when unpickled (hand-written)."""
    return f"cbuiltins\nopen\n(V{marker}\nVw\ntR.".encode()


def object_npy(marker: Path) -> bytes:
    """An .npy file holding an object array whose payload is :func:`pickle_bomb`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buffer.getvalue() + pickle_bomb(marker)



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


def finish(proc: subprocess.Popen[str]) -> Run:
    out, err = proc.communicate(timeout=120)
    return Run(proc.returncode, out, err)


# ---- small corpora ---------------------------------------------------------------------


def cli_lines(*args: str | Path) -> tuple[int, str, list[str]]:
    """``crampqa ARGS`` in this process: (exit code, stdout, stderr lines)."""
    code, out, err = run_main(*args)
    return code, out, err.strip().splitlines()


def run_index(corpus: Path, idx: Path, *extra: str) -> list[str]:
    """``crampqa index``; asserts success and returns the stderr lines."""
    code, _, err = cli_lines("index", "--corpus", corpus, "--index", idx, *extra)
    assert code == 0, err
    assert not any("Traceback" in line for line in err)
    return err


def summary_line(err: list[str]) -> str:
    lines = [line for line in err if line.startswith("Indexed ")]
    assert len(lines) == 1, err
    return lines[0]


def ask_json(corpus: Path, idx: Path, question: str, k: int = 3) -> dict[str, Any]:
    code, out, err = cli_lines("ask", question, "--json", "-k", str(k), "--index", idx,
                         "--corpus", corpus)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


HTML = """<!doctype html>
<html><head><title>Night cramps leaflet</title>
<style>.warn { color: red }</style>
<script>var zorblaxscript = "never shown";</script></head>
<body><nav>Home</nav>
<h1>Night cramps</h1>
<p>Quinine is <b>no longer</b> advised for ordinary night cramps.</p>
<ul><li>Stretch the calf before bed.</li><li>Drink enough water.</li></ul>
<script>hiddenscriptword();</script><noscript>Enable noscriptword</noscript>
<table><tr><th>Mineral</th><th>Food</th></tr><tr><td>Magnesium</td><td>Spinach</td></tr></table>
</body></html>
"""


def mixed_tree(root: Path) -> Path:
    """Nested .txt/.md/.html files, two with the same stem."""
    write(root / "calf.txt", "Calf cramps\n\nA calf cramp is a sudden painful tightening "
          "of the calf muscle. Stretching the calf usually helps within minutes.\n")
    write(root / "minerals" / "magnesium.md", "# Magnesium\n\nMagnesium helps muscles "
          "relax after they contract. Nuts, seeds and spinach contain magnesium.\n")
    write(root / "minerals" / "deep" / "potassium.txt", "Potassium\n\nBananas and beans are "
          "good sources of potassium, an electrolyte muscles need.\n")
    write(root / "leaflets" / "night.html", HTML)
    write(root / "leaflets" / "night.md", "# Night cramps (notes)\n\nWriter's notes on "
          "sleep position and bedding that presses the toes down.\n")
    return root


def write_beir(path: Path, docs: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc) + "\n")


