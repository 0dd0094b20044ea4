"""Bad input through the CLI and API: one line, the documented exit code and JSON shape."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.cli import main
from crampqa.config import MAX_QUESTION_CHARS
from crampqa.engine import clean_question
from crampqa.errors import InputError
from tests.support import QUESTION, Crampqa, assert_verbatim, cli, texts_of

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- questions ----------------------------------------------------------------------


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


def test_bad_options_give_the_json_error_shape(index: Path) -> None:
    """Click's own usage errors (bad -k, unknown option) follow the same rules."""
    run = cli("ask", QUESTION, "-k", "many", "--json", "--index", index)
    assert run.error(2, "bad_input").startswith("Invalid value for '-k' / '--top': ")
    assert cli("ask", QUESTION, "--jsn", "--index", index).error(2).startswith(
        "No such option: --jsn")
    assert cli("ask", "--index", index).error(2) == "Missing argument 'QUESTION'."
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
    for on in ("1", "true", "yes", "on", "2"):
        monkeypatch.setenv("CRAMPQA_DEBUG", on)
        with pytest.raises(ZeroDivisionError):
            main(["ask", QUESTION, "--index", str(index), "--corpus", str(corpus)])
    for off in ("0", "false", "no", "off", "", " 0 "):
        monkeypatch.setenv("CRAMPQA_DEBUG", off)
        assert cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(1) == message




def test_closed_output_pipe_ends_quietly(index: Path, sub: Crampqa) -> None:
    """`crampqa … | head`: the reader leaving early ends it quietly (click exits with 1)."""
    proc = sub.start("sources", "--json", "--index", index)
    assert proc.stdout is not None
    proc.stdout.close()  # before the child can have written anything
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (1, "")
