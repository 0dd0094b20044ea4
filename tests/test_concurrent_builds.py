"""Builds running at once and interrupted builds never damage the index."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from crampqa.store import MANIFEST, load_version
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
