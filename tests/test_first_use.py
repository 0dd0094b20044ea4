"""Rough edges a new user meets: language note, '-' questions, typos, piped output, API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.presentation import STRENGTHS, strength
from crampqa.results import ABSTAIN_MESSAGE, NOT_ENGLISH_NOTE
from tests.conftest import run_main

SPANISH = "¿Por qué tengo calambres en las piernas por la noche?"


class FakeQA:
    """Records what `ask` was asked and stops."""

    build_summary = None
    notice = None

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def ask(self, question: str, k: int = 3, **kwargs: object) -> object:
        self.asked.append((question, k))
        raise SystemExit(0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeQA:
    import crampqa.cli as cli

    qa = FakeQA()
    monkeypatch.setattr(cli, "_open", lambda *a, **k: qa)
    return qa


@pytest.mark.usefixtures("fake_default_model")
def test_a_question_in_another_language_is_told_only_that(corpus: Path, index: Path) -> None:
    code, out, err = run_main(SPANISH, "--index", index)
    assert code == 0, err
    assert ABSTAIN_MESSAGE not in out
    assert out.count(NOT_ENGLISH_NOTE) == 1
    assert out.startswith(NOT_ENGLISH_NOTE + " The closest passages, shown below as weak "
                          "matches, may not answer it.\n")
    answer = json.loads(run_main(SPANISH, "--json", "--index", index)[1])
    assert (answer["abstained"], answer["reason"], answer["message"]) == (
        True, "not_english", NOT_ENGLISH_NOTE)


@pytest.mark.parametrize("args", [
    ["--", "-5 degrees and my calves cramp", "-k", "1"],
    ["--", "-5 degrees and my calves cramp", "--top=1"],
    ["ask", "--", "-5 degrees and my calves cramp", "-k", "1"],
    ["-k", "1", "--", "-5", "degrees", "and", "my", "calves", "cramp"],
])
def test_options_after_a_dash_question_are_options(args: list[str], fake: FakeQA) -> None:
    code, _, err = run_main(*args)
    assert code == 0, err
    assert fake.asked == [("-5 degrees and my calves cramp", 1)]


def test_a_number_as_first_word_gets_the_dash_hint(fake: FakeQA) -> None:
    code, out, err = run_main("-5", "degrees", "and", "my", "calves", "cramp")
    assert (code, out) == (2, "")
    assert err == ("crampqa: error: No such option: -5. A question that starts with '-' "
                   "goes after '--': crampqa -- \"-5 degrees and my calves cramp\"\n")
    assert fake.asked == []


def test_a_mistyped_command_before_a_source_id_is_a_typo(fake: FakeQA) -> None:
    code, out, err = run_main("shwo", "000_153f9343c5352d90#6779-6991")
    assert (code, out) == (2, "")
    assert err == ("crampqa: error: 'shwo' is not a command; did you mean `crampqa show "
                   "000_153f9343c5352d90#6779-6991`? (To ask it as a question: crampqa ask "
                   "shwo 000_153f9343c5352d90#6779-6991)\n")
    assert run_main("shwo", "me", "magnesium")[0] == 0  # words, not a source ID: a question
    assert fake.asked == [("shwo me magnesium", 3)]


def test_help_ask_names_the_question_plainly() -> None:
    code, out, _ = run_main("help", "ask")
    assert code == 0
    assert out.startswith("Usage: crampqa ask [OPTIONS] QUESTION...\n")
    assert "<list[str]>" not in out and "{question}" not in out
    assert "\n  QUESTION...  " in out


@pytest.mark.usefixtures("fake_default_model")
def test_piped_sources_is_one_line_a_document(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    title = "A rather long title for a note about potassium, bananas and night cramps"
    (folder / "potassium-and-bananas-at-night.md").write_text(
        "Bananas contain potassium.\n", encoding="utf-8")
    (folder / "sources.json").write_text(json.dumps(
        {"potassium-and-bananas-at-night": {"title": title}}), encoding="utf-8")
    code, out, err = run_main("sources", "--corpus", folder, "--index", tmp_path / "idx")
    assert code == 0, err
    assert out == f"potassium-and-bananas-at-night  {title}\n"  # 104 characters, unwrapped


@pytest.mark.usefixtures("fake_default_model")
def test_info_verify_prints_its_verdict_first_on_stdout(index: Path) -> None:
    code, out, err = run_main("info", "--verify", "--index", index)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("OK: the manifest and all ") and lines[0].endswith(
        " index files match their SHA-256 checksums.")
    assert lines[1].startswith("documents   ")
    code, out, err = run_main("info", "--verify", "--json", "--index", index)
    assert code == 0 and json.loads(out)["format_version"]  # still one JSON object
    assert err.startswith("OK: the manifest and all ")


def test_passages_carry_their_strength(module_qa: CrampQA) -> None:
    for question in ("why do my calves cramp at night", "how do I repot a monstera"):
        answer = module_qa.ask(question, k=5)
        shown = answer.to_dict()["passages"]
        for passage, item in zip(answer.passages, shown, strict=True):
            assert passage.strength in STRENGTHS
            assert passage.strength == strength(passage, answer) == item["strength"]
            assert list(item)[-1] == "strength"  # the JSON keeps its order
