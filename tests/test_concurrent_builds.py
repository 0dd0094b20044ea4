"""Builds running at once and interrupted builds never damage the index."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crampqa.manifest import Manifest
from crampqa.store import (
    CURRENT_FILE,
    MANIFEST,
    commit_version,
    load_version,
    new_version_folder,
)
from tests.support import QUESTION, Crampqa, assert_verbatim, cli, finish, texts_of, version

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- concurrency --------------------------------------------------------------------


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


# ---- interruptions ------------------------------------------------------------------


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


# ---- the CURRENT pointer --------------------------------------------------------------


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # pragma: no cover - not Linux
        return ""


def test_current_is_replaced_by_renaming_a_complete_synced_file(
        index: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build never writes ``CURRENT`` in place: it writes the new name to a temporary
    file beside it, fsyncs that file, then renames it over ``CURRENT`` (one inode swap)."""
    pointer = index / CURRENT_FILE
    before = version(index)
    inode_before = pointer.stat().st_ino
    synced: list[str] = []
    # (source, its text, whether it was fsynced, CURRENT's text just before the rename)
    swaps: list[tuple[Path, str, bool, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(_fd_path(fd))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == pointer:
            swaps.append((Path(src), Path(src).read_text("utf-8"),
                          str(Path(src).resolve()) in synced, pointer.read_text("utf-8")))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    run = cli("index", "--rebuild", "--corpus", corpus, "--index", index)
    assert run.code == 0, run.err
    after = version(index)
    assert after != before
    assert len(swaps) == 1, "CURRENT must change by exactly one rename"
    source, new_text, was_synced, old_text = swaps[0]
    assert source.parent == index and source.name != CURRENT_FILE
    assert was_synced, "the new CURRENT text must reach the disk before the rename"
    assert new_text == after.name + "\n"  # whole before it became CURRENT
    assert old_text == before.name + "\n"  # untouched until the rename
    assert pointer.read_text("utf-8") == new_text
    assert pointer.stat().st_ino != inode_before  # a new file, not the old one rewritten
    assert not source.exists() and not list(index.glob(f".{CURRENT_FILE}.*"))


READER = """
import json, os, re, sys, time
pointer, ready, stop = sys.argv[1:4]
pattern = re.compile(r"v-[0-9]+-[0-9]+\\n")
reads, bad = 0, []
open(ready, "w").close()
while not os.path.exists(stop):
    try:
        with open(pointer, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raw = b"<missing>"
    reads += 1
    if not pattern.fullmatch(raw.decode("utf-8", "replace")) and len(bad) < 20:
        bad.append(raw.decode("utf-8", "replace"))
print(json.dumps({"reads": reads, "bad": bad}))
"""


def test_a_reader_never_sees_a_partly_written_current(index: Path, tmp_path: Path) -> None:
    """Versions committed in a loop while another process reads ``CURRENT`` as fast as it
    can: every read is a whole version name, never empty, cut short or missing."""
    manifest = Manifest.load(version(index))
    ready, stop = tmp_path / "reader.ready", tmp_path / "reader.stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(READER), str(index / CURRENT_FILE),
         str(ready), str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert reader.poll() is None, reader.communicate()
            assert time.monotonic() < deadline, "the reader never started"
            time.sleep(0.01)
        names = set()
        for _ in range(150):
            tmp = new_version_folder(index)
            (tmp / "payload.txt").write_text("x", "utf-8")
            names.add(commit_version(index, tmp, manifest).name)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert len(names) == 150 and (index / CURRENT_FILE).read_text("utf-8").strip() in names
    assert result["reads"] > 150, "the reader hardly ran while the versions were committed"
    assert result["bad"] == []
    assert all(re.fullmatch(r"v-[0-9]+-[0-9]+", p.name) for p in index.glob("v-*"))
