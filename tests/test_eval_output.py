"""What `crampqa eval` prints and writes: in-sample sets, p-values, the plot, BEIR splits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT
from crampqa.errors import EvalError
from crampqa.evaluation.datasets import beir_split, load_questions, question_set_header
from crampqa.evaluation.report import (
    COVERAGE_CAPTION,
    GLOSSARY,
    PLOT_GLOSSARY,
    markdown_report,
    metrics_table,
    p_value,
    same_as,
    write_plot,
)
from crampqa.evaluation.runner import EvalResult, evaluate_path, evaluate_questions
from tests.conftest import CORPUS
from tests.test_eval import fake_open, write_beir

EVAL = PROJECT_ROOT / "eval"


def _q(qid: str, question: str = "why do my calves cramp at night") -> dict[str, object]:
    return {"id": qid, "question": question, "evidence": ["calf"], "answerable": True}


def test_question_sets_declare_tuning_in_a_header_line(tmp_path: Path) -> None:
    # questions.jsonl tuned the fusion; dev.jsonl the answer scorer's weight and threshold
    assert question_set_header(EVAL / "questions.jsonl")["tuning"] is True
    assert question_set_header(EVAL / "dev.jsonl")["tuning"] is True
    for name in ("heldout.jsonl", "blind.jsonl"):
        assert question_set_header(EVAL / name).get("tuning") is not True
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps({"tuning": True}) + "\n" + json.dumps(_q("a")) + "\n")
    assert [q.id for q in load_questions(path)] == ["a"]  # the header is not a question
    path.write_text(json.dumps({"tuning": "yes"}) + "\n" + json.dumps(_q("a")) + "\n")
    with pytest.raises(EvalError, match="'tuning' must be true or false"):
        load_questions(path)


@pytest.fixture(scope="module")
def tuned_result(real_index: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalResult:
    """Two identical configurations on 12 questions of the tuning set, evaluated as
    `crampqa eval` does (the runner reads the set's header line itself)."""
    lines = (EVAL / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("tuned") / "tuned.jsonl"
    path.write_text("\n".join(lines[:13]) + "\n", encoding="utf-8")
    return evaluate_path(path, ["hybrid+rescore", "fast"], k=10, corpus=CORPUS,
                         index=real_index)


def test_in_sample_is_printed_beside_the_figures(tuned_result: EvalResult) -> None:
    from rich.console import Console

    assert tuned_result.in_sample and tuned_result.to_dict()["in_sample"] is True
    console = Console(width=200, record=True)
    console.print(metrics_table(tuned_result))
    table = " ".join(console.export_text().split())
    assert "fast (in-sample)" in table and "in-sample: this question set was used" in table
    report = markdown_report(tuned_result)
    assert "| measure | hybrid+rescore (in-sample) | fast (in-sample) |" in report


def test_identical_configurations_say_so_and_the_threshold_is_marked(
        tuned_result: EvalResult, tmp_path: Path) -> None:
    assert same_as(tuned_result) == {"fast": "hybrid+rescore"}
    assert [c.abstain_threshold for c in tuned_result.configs] == [pytest.approx(0.46)] * 2
    path = write_plot(tuned_result, tmp_path / "plot.png")
    assert path.stat().st_size > 10_000
    # the legend texts, read back from the figure the report draws
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    captured: list[Figure] = []
    original = Figure.savefig

    def keep(self: Figure, *args: object, **kwargs: object) -> None:
        captured.append(self)
        original(self, *args, **kwargs)

    Figure.savefig = keep  # type: ignore[method-assign]
    try:
        write_plot(tuned_result, tmp_path / "again.png")
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    (fig,) = captured
    legends = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "fast (same as hybrid+rescore) hit@k" in legends
    assert "fast abstains below 0.46" in legends
    assert any(COVERAGE_CAPTION in t.get_text() for t in fig.texts)
    assert "below hit@1" in COVERAGE_CAPTION


def _legends_and_texts(result: EvalResult, tmp_path: Path) -> tuple[list[str], list[str]]:
    """The legend entries and figure texts of the plot the report draws."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    captured: list[Figure] = []
    original = Figure.savefig

    def keep(self: Figure, *args: object, **kwargs: object) -> None:
        captured.append(self)
        original(self, *args, **kwargs)

    Figure.savefig = keep  # type: ignore[method-assign]
    try:
        write_plot(result, tmp_path / "plot.png")
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    (fig,) = captured
    return ([t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()],
            [t.get_text() for t in fig.texts])


def test_each_configuration_has_its_own_threshold_and_the_report_explains_itself(
        real_qa: CrampQA, tmp_path: Path) -> None:
    questions = load_questions(EVAL / "heldout.jsonl")[:8]
    result = evaluate_questions(real_qa, questions, ["fast", "default"], k=10)
    fast, default = result.configs
    settings = real_qa.retrieval_settings
    assert fast.abstain_threshold == settings.abstain_threshold  # fusion's, 0.46
    assert default.abstain_threshold == settings.scorer_threshold  # the scorer's, 0.10
    assert fast.abstain_threshold != default.abstain_threshold
    data = json.loads(json.dumps(result.to_dict()))
    assert "abstain_threshold" not in data  # no single threshold for all configurations
    assert {name: c["abstain_threshold"] for name, c in data["configs"].items()} == {
        "fast": settings.abstain_threshold, "default": settings.scorer_threshold}
    legends, texts = _legends_and_texts(result, tmp_path)
    assert f"fast abstains below {settings.abstain_threshold:g}" in legends
    assert f"default abstains below {settings.scorer_threshold:g}" in legends
    assert any(PLOT_GLOSSARY in text for text in texts)

    report = markdown_report(result)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines()
            if line.startswith("| ")}
    assert "P@1" not in rows  # it always equals hit@1
    scored = len(default.per_query)
    hits = sum(1 for row in default.per_query.values() if row["hit@1"] > 0)
    assert rows["hit@1"].endswith(f"| {default.metrics['hit@1']:.3f} ({hits}/{scored}) |")
    a = default.abstention
    assert a is not None
    assert f"({a['n_false_abstentions']}/{a['n_answerable']})" in rows[
        f"false abstention (of {a['n_answerable']})"]
    assert rows["abstains below"] == (f"| abstains below | {settings.abstain_threshold:.2f} | "
                                      f"{settings.scorer_threshold:.2f} |")
    assert "### What the measures mean" in report
    for name, _ in GLOSSARY:
        assert f"- **{name}**: " in report


def test_small_p_values_are_printed_as_less_than() -> None:
    assert p_value(0.0001) == "< 0.001"
    assert p_value(0.0) == "< 0.001"
    assert p_value(0.001) == "0.001"
    assert p_value(0.4567) == "0.457"


def test_small_p_values_in_table_and_report(tuned_result: EvalResult) -> None:
    comparison = tuned_result.comparisons[0]
    tiny = replace(comparison, p_values={m: 0.0001 for m in comparison.p_values})
    result = replace(tuned_result, comparisons=[tiny])
    report = markdown_report(result)
    p_rows = [line for line in report.splitlines() if line.startswith("| p ")]
    assert p_rows and all(line.endswith("| < 0.001 |") for line in p_rows)
    assert "| fast | hit@1 | +0.000 | < 0.001 |" in report


def test_beir_folder_with_one_split_needs_no_split_option(tmp_path: Path, fake_settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import crampqa.evaluation.runner as runner_mod

    folder = write_beir(tmp_path / "onesplit")
    (folder / "qrels" / "dev.tsv").rename(folder / "qrels" / "test.tsv")
    assert beir_split(folder, None) == "test"
    seen: list[Path | None] = []
    monkeypatch.setattr(runner_mod, "open_index", fake_open(tmp_path / "idx", fake_settings,
                                                            seen))
    result = evaluate_path(folder, ["bm25"], k=5)
    assert result.split == "test" and result.n_queries == 4
    (folder / "qrels" / "train.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    with pytest.raises(EvalError, match="several qrels splits"):
        beir_split(folder, None)
    assert beir_split(folder, "train") == "train"
