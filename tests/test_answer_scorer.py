"""The answer scorer in the pipeline, on the real model and the real corpus."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.embedding import Embedder, get_embedder
from crampqa.manifest import Action, IndexInputs, freshness
from crampqa.results import ABSTAIN_MESSAGE
from crampqa.scorer import packaged_scorer_record
from crampqa.web.app import create_app
from tests.conftest import CORPUS, run_main


def test_answers_say_what_ranked_them(real_qa: CrampQA) -> None:
    scored = real_qa.ask("why do my calves cramp at night", k=3)
    assert scored.ranked_by == real_qa.retriever.scorer.name
    assert all(p.probability is not None and 0 <= p.probability <= 1 for p in scored.passages)
    fast = real_qa.ask("why do my calves cramp at night", k=3, scorer=False)
    assert fast.ranked_by == "fusion"
    assert all(p.probability is None for p in fast.passages)


def test_the_manifest_records_the_scorer(real_qa: CrampQA) -> None:
    record = packaged_scorer_record()
    assert record["sha256"] == real_qa.retriever.scorer.sha256
    assert real_qa.data.manifest.scorer == record
    assert real_qa.manifest["scorer"] == record


def test_another_scorer_is_recorded_without_rebuilding(real_qa: CrampQA) -> None:
    manifest = dataclasses.replace(real_qa.data.manifest,
                                   scorer={"name": "crampqa-scorer", "sha256": "0" * 64})
    verdict = freshness(manifest, IndexInputs(real_qa.data.settings,
                                              _identity_embedder(real_qa)))
    assert verdict.action is Action.RECORD and verdict.reason == "the answer scorer changed"


def _identity_embedder(qa: CrampQA) -> Embedder:
    return get_embedder(qa.data.settings.model)


def test_typos_do_not_cause_abstention(real_qa: CrampQA) -> None:
    answer = real_qa.ask("magnesuim for leg crmaps", k=3)
    assert not answer.abstained
    assert "magnesium" in answer.passages[0].text.lower()


def test_a_drug_the_sources_never_mention_is_named(real_qa: CrampQA) -> None:
    answer = real_qa.ask("does quinine help leg cramps", k=3)
    assert answer.abstained and answer.reason == "unknown_terms"
    assert "never mention “quinine”" in (answer.message or "")
    assert all(p.weak for p in answer.passages)


def test_the_reason_reaches_json_the_api_and_plain_output(real_qa: CrampQA,
                                                        real_index: Path) -> None:
    """The message that names the unknown word is what `--json`, `/api/ask` and the
    plain output carry, never only the generic sentence."""
    question = "does quinine help leg cramps"
    message = f"{ABSTAIN_MESSAGE} They never mention “quinine”."
    assert real_qa.ask(question).message == message
    where = ("--corpus", CORPUS, "--index", real_index)
    code, out, err = run_main("ask", "--json", *where, question)
    assert code == 0, err
    data = json.loads(out)
    assert data["reason"] == "unknown_terms" and data["message"] == message
    with TestClient(create_app(real_qa, warm_up=False),
                    base_url="http://127.0.0.1:8765") as client:
        api = client.get("/api/ask", params={"q": question}).json()
    assert api["reason"] == "unknown_terms" and api["message"] == message
    code, out, err = run_main("ask", *where, question)  # piped: plain text
    assert code == 0, err
    assert out.startswith(message)


def test_an_amount_the_sources_do_not_give_is_said(real_qa: CrampQA) -> None:
    answer = real_qa.ask("how much potassium should i eat a day", k=3)
    assert answer.abstained and answer.reason == "no_amounts"
    assert answer.to_dict()["reason"] == "no_amounts"


def test_fast_mode_keeps_its_own_abstention(real_qa: CrampQA) -> None:
    """Off-topic questions abstain in both modes."""
    for scorer in (None, False):
        assert real_qa.ask("what is the capital of france", scorer=scorer).abstained
