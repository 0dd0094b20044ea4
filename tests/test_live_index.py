"""`crampqa serve` follows a rebuilt index: it loads the new complete version beside the
old one, switches, lets requests in flight finish on the old one, then releases it; builds
never prune a version the service still holds."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.errors import IndexError_
from crampqa.store import VersionLease, current_version, prune_versions
from crampqa.web.app import create_app
from crampqa.web.cache import AnswerCache, AnswerKey
from crampqa.web.live import LiveIndex
from crampqa.web.service import AskRequest
from tests.support import QUESTION, assert_verbatim, texts_of, version

pytestmark = pytest.mark.usefixtures("fake_default_model")

BASE = "http://127.0.0.1:8765"
NEW_DOC = "# Quokka cramps\n\nQuokka cramps are eased by zebra tonic, says nobody.\n"
NEW_QUESTION = "quokka cramps zebra tonic"


@pytest.fixture
def served(corpus_copy: Path, tmp_path: Path) -> tuple[Path, Path, CrampQA]:
    """A corpus free to change, its index, and the engine a service starts with."""
    index = tmp_path / "index"
    CrampQA.build(corpus_copy, index)
    return corpus_copy, index, CrampQA.open(corpus_copy, index, auto_build=False)


def rebuild(corpus: Path, index: Path) -> Path:
    """A new complete version (everything re-embedded); returns its folder."""
    CrampQA.build(corpus, index, rebuild=True)
    return version(index)


def change_corpus(corpus: Path) -> str:
    """Add the quokka article and remove one document; returns the removed ID."""
    (corpus / "quokka.md").write_text(NEW_DOC, encoding="utf-8")
    gone = sorted(corpus.glob("*.txt"))[0]
    gone.unlink()
    return gone.stem


def ask(client: TestClient, question: str = QUESTION, k: int = 5) -> dict[str, Any]:
    response = client.get("/api/ask", params={"q": question, "k": k})
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


# ---- switching ------------------------------------------------------------------------


def test_the_service_switches_to_a_rebuilt_version(served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False)
    live: LiveIndex = app.state.live
    with TestClient(app, base_url=BASE) as c:
        first = c.get("/api/health").json()["index"]
        assert first == qa.data.folder.name
        assert live.check() is False  # nothing new
        removed = change_corpus(corpus)
        new = rebuild(corpus, index)
        assert live.check() is True
        health = c.get("/api/health").json()
        assert health["index"] == new.name != first and (index / health["index"]).is_dir()
        answer = ask(c, NEW_QUESTION)
        assert answer["passages"][0]["doc_id"] == "quokka"
        texts = texts_of(corpus)
        for question in (QUESTION, NEW_QUESTION, "magnesium", "potassium bananas"):
            passages = ask(c, question)
            assert_verbatim(passages, texts)
            assert removed not in {p["doc_id"] for p in passages["passages"]}
        ids = {s["doc_id"] for s in c.get("/api/sources").json()}
        assert "quokka" in ids and removed not in ids
    assert live.switches == 1


def test_the_watcher_notices_a_new_current_by_itself(
        served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False)
    app.state.live.interval = 0.05
    with TestClient(app, base_url=BASE) as c:
        new = rebuild(corpus, index)
        deadline = time.monotonic() + 30
        while c.get("/api/health").json()["index"] != new.name:
            assert time.monotonic() < deadline, "the service never switched"
            time.sleep(0.05)
    assert not app.state.live._thread  # stopped with the service


def test_requests_in_flight_finish_on_the_old_version_which_is_then_released(
        served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    live = LiveIndex(qa)
    v1 = qa.data.folder
    with live.use() as held:  # a request that started before the switch
        v2 = rebuild(corpus, index)
        assert live.check() and live.current.data.folder == v2
        assert held is qa and held.data.folder == v1
        v3 = rebuild(corpus, index)  # this build's prune would remove v1: v1 is held
        assert v1.is_dir()
        answer = held.ask(QUESTION, k=5).to_dict()  # and it still answers, verbatim
        assert_verbatim(answer, texts_of(corpus))
    rebuild(corpus, index)  # released now: pruned; v2 is still served, so it stays
    assert not v1.exists() and v2.is_dir() and v3.is_dir()
    live.close()
    prune_versions(index, keep=version(index).name)
    assert not v2.exists()  # released by close()


def test_a_damaged_new_version_is_not_served(served: tuple[Path, Path, CrampQA],
                                             caplog: pytest.LogCaptureFixture) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False)
    live: LiveIndex = app.state.live
    with TestClient(app, base_url=BASE) as c:
        new = rebuild(corpus, index)
        path = new / "embeddings.npy"  # same size, other bytes: only a full hash sees it
        good = path.read_bytes()
        path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
        assert live.check() is False
        assert live.last_error == ("Index file embeddings.npy is corrupted (checksum "
                                   "mismatch); run `crampqa index --rebuild`.")
        assert caplog.messages[-1] == (f"crampqa: cannot serve the new index version: "
                                       f"{live.last_error} (still answering from "
                                       f"{qa.data.folder.name})")
        assert c.get("/api/health").json()["index"] == qa.data.folder.name
        assert ask(c)["passages"]
        fixed = rebuild(corpus, index)
        assert live.check() is True and live.last_error is None
        assert c.get("/api/health").json()["index"] == fixed.name


def test_stale_answers_go_at_the_switch_and_never_come_back(
        served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False)
    cache: AnswerCache = app.state.answer_cache
    with TestClient(app, base_url=BASE) as c:
        before = ask(c, NEW_QUESTION)
        old = cache.version
        assert old == str(qa.data.folder) and len(cache) == 1
        change_corpus(corpus)
        new = rebuild(corpus, index)
        assert app.state.live.check()
        assert cache.version == str(new) and len(cache) == 0
        after = ask(c, NEW_QUESTION)
        assert after != before and after["passages"][0]["doc_id"] == "quokka"
        assert len(cache) == 1
        # a key of the old version (a request that started before the switch) neither
        # finds nor stores anything, and does not bring the old version back
        assert old is not None
        stale = AnswerKey(old, AskRequest(NEW_QUESTION, 5))
        assert cache.get(stale) is None
        cache.put(stale, b"{}")
        assert cache.version == str(new) and len(cache) == 1


def test_a_service_not_following_holds_no_lease(served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False, follow_index=False)
    with TestClient(app, base_url=BASE) as c:
        rebuild(corpus, index)
        rebuild(corpus, index)
        assert not qa.data.folder.exists()  # pruned: nothing held it
        assert c.get("/api/health").json()["index"] == qa.data.folder.name


# ---- leases ---------------------------------------------------------------------------


def test_a_leased_version_is_never_pruned(index: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    folders = []
    for n in range(4):
        folder = root / f"v-2026010100000000000{n}-1"
        shutil.copytree(version(index), folder)
        folders.append(folder)
    lease = VersionLease(folders[0])
    prune_versions(root, keep=folders[3].name)
    assert [f.exists() for f in folders] == [True, False, True, True]
    lease.release()
    lease.release()  # twice is harmless
    prune_versions(root, keep=folders[3].name)
    assert [f.exists() for f in folders] == [False, False, True, True]


def test_a_lease_on_a_removed_version_fails_clearly(index: Path) -> None:
    folder = version(index)
    gone = folder.parent / "v-gone"
    with pytest.raises(IndexError_) as info:
        VersionLease(gone)
    assert info.value.message == (f"Index version v-gone in {index} is gone; run `crampqa "
                                  "index --rebuild`.")


# ---- under load -----------------------------------------------------------------------


def test_rebuilds_under_load_fail_no_request_and_serve_the_files_on_disk(
        served: tuple[Path, Path, CrampQA]) -> None:
    corpus, index, qa = served
    app = create_app(qa, warm_up=False, engine_threads=2)
    app.state.live.interval = 0.05
    questions = [QUESTION, NEW_QUESTION, "magnesium", "potassium bananas", "night cramps",
                 "vitamin d", "stretch the calf", "quinine"]
    statuses: list[int] = []
    with TestClient(app, base_url=BASE) as c, ThreadPoolExecutor(4) as pool:

        def hammer(n: int) -> None:
            for i in range(n):
                r = c.get("/api/ask", params={"q": questions[i % len(questions)], "k": 3})
                statuses.append(r.status_code)

        load = [pool.submit(hammer, 40) for _ in range(4)]
        for step in range(2):
            if step == 0:
                removed = change_corpus(corpus)
            else:
                (corpus / "quokka.md").unlink()
            new = rebuild(corpus, index)
            deadline = time.monotonic() + 30
            while c.get("/api/health").json()["index"] != new.name:
                assert time.monotonic() < deadline, "the service never switched"
                time.sleep(0.05)
            texts = texts_of(corpus)
            for question in questions:  # asked after the switch: the files on disk
                answer = ask(c, question, k=3)
                assert_verbatim(answer, texts)
                assert {p["doc_id"] for p in answer["passages"]} <= set(texts)
                assert removed not in {p["doc_id"] for p in answer["passages"]}
        for done in load:
            done.result()
    assert len(statuses) == 160 and set(statuses) == {200}
    assert app.state.live.switches == 2
    assert current_version(index) == new
