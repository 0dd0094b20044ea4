"""How the command line reads what a person types: bare words, help, typos, '-' questions."""

from __future__ import annotations

import pytest

from crampqa.cli import _route, did_you_mean
from crampqa.errors import InputError
from tests.conftest import run_main


def test_bare_words_are_one_question() -> None:
    assert _route(["why", "do", "my", "calves", "cramp"]) == [
        "ask", "why", "do", "my", "calves", "cramp"]
    assert _route(["-k", "5", "calf", "cramps"]) == ["ask", "-k", "5", "calf", "cramps"]


def test_unquoted_question_is_answered_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import crampqa.cli as cli

    asked: list[str] = []

    class FakeQA:
        build_summary = None
        notice = None

        def ask(self, question: str, **kwargs: object) -> object:
            asked.append(question)
            raise SystemExit(0)

    monkeypatch.setattr(cli, "_open", lambda *a, **k: FakeQA())
    code, _, err = run_main("why", "do", "my", "calves", "cramp", "at", "night", "-k", "2")
    assert code == 0, err
    assert asked == ["why do my calves cramp at night"]


@pytest.mark.parametrize("args", [["help"], ["-h"], ["--help"]])
def test_help_words_show_the_help(args: list[str]) -> None:
    code, out, err = run_main(*args)
    assert code == 0, err
    assert out.startswith("Usage: crampqa")
    assert "ask" in out and "sources" in out


@pytest.mark.parametrize("args", [["help", "ask"], ["ask", "-h"]])
def test_help_for_one_command(args: list[str]) -> None:
    code, out, _ = run_main(*args)
    assert code == 0
    assert out.startswith("Usage: crampqa ask")


def test_help_inside_a_question_is_a_question() -> None:
    assert _route(["help", "me", "with", "cramps"])[0] == "ask"


@pytest.mark.parametrize(("word", "command"), [
    ("soruces", "sources"), ("sources", None), ("indx", "index"), ("serv", "serve"),
    ("evla", "eval"), ("ifno", "info"), ("magnesium", None), ("cramps", None), ("shwo", "show"),
])
def test_did_you_mean(word: str, command: str | None) -> None:
    assert did_you_mean(word) == command


def test_a_mistyped_command_is_not_answered() -> None:
    code, out, err = run_main("soruces")
    assert code == 2
    assert out == ""
    assert err.strip() == ("crampqa: error: 'soruces' is not a command; did you mean "
                           "`crampqa sources`? (To ask it as a question: crampqa ask soruces)")
    with pytest.raises(InputError):
        _route(["soruces"])
    assert _route(["ask", "soruces"]) == ["ask", "soruces"]  # asked on purpose


def test_question_starting_with_a_dash_gets_a_hint() -> None:
    code, _, err = run_main("-cramps at night")
    assert code == 2
    assert "goes after '--'" in err and 'crampqa -- "-cramps at night"' in err
    assert len(err.strip().splitlines()) == 1
    assert _route(["--", "-cramps at night"]) == ["ask", "--", "-cramps at night"]


def test_ask_and_eval_share_the_k_option() -> None:
    _, ask_help, _ = run_main("ask", "--help")
    _, eval_help, _ = run_main("eval", "--help")
    for text in (ask_help, eval_help):
        assert "-k, --top" in text
