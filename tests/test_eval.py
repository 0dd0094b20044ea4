"""Batch evaluation (`crampqa eval`): runner, report, TREC runs, CLI and BEIR folders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import pytrec_eval
from typer.testing import CliRunner

from crampqa import CrampQA
from crampqa.cli import app, main
from crampqa.config import PROJECT_ROOT
from crampqa.corpus import read_corpus
from crampqa.errors import EvalError
from crampqa.evaluation import runner as runner_mod
from crampqa.evaluation.datasets import (
    Question,
    check_evidence_in_corpus,
    contains_evidence,
    load_questions,
)
from crampqa.evaluation.metrics import Qrels, Run, rank_run
from crampqa.evaluation.report import (
    markdown_report,
    read_trec_run,
    run_paths,
    write_report,
    write_runs,
    write_trec_run,
)
from crampqa.evaluation.runner import (
    CONFIGS,
    EvalResult,
    beir_index_dir,
    evaluate_beir,
    evaluate_questions,
    prepare_beir,
    resolve_configs,
)
from tests.conftest import CORPUS, FakeEmbedder

QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
TOL = 1e-6
cli = CliRunner()


def measures(k: int) -> dict[str, str]:
    """crampqa measure name -> pytrec_eval measure name, for results of depth ``k``."""
    return {
        "hit@1": "success_1",
        "hit@3": "success_3",
        f"hit@{k}": f"success_{k}",
        f"recall@{k}": f"recall_{k}",
        f"nDCG@{k}": f"ndcg_cut_{k}",
        "MAP": "map",
        f"MRR@{k}": "recip_rank",  # on the run cut to k
        "P@1": "P_1",
        f"P@{k}": f"P_{k}",
    }


def assert_matches_pytrec_eval(run: Run, qrels: Qrels, per_query: dict[str, dict[str, float]],
                               metrics: dict[str, float], k: int = 10) -> None:
    """Per-query and mean measures equal pytrec_eval's on the run cut to ``k``."""
    wanted = measures(k)
    cut = {qid: {d: docs[d] for d in rank_run(docs)[:k]} for qid, docs in run.items()}
    scored = {q: j for q, j in qrels.items() if any(r > 0 for r in j.values())}
    ref = pytrec_eval.RelevanceEvaluator(scored, set(wanted.values())).evaluate(cut)
    assert set(per_query) == set(scored)
    for qid in scored:
        for ours, theirs in wanted.items():
            expected = ref[qid][theirs] if qid in ref else 0.0
            assert per_query[qid][ours] == pytest.approx(expected, abs=TOL), (qid, ours)
    for ours in wanted:
        mean = sum(per_query[q][ours] for q in scored) / len(scored)
        assert metrics[ours] == pytest.approx(mean, abs=TOL)


# --------------------------------------------------------------------------- real question set


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions(QUESTIONS)


@pytest.fixture(scope="module")
def real_result(real_qa: CrampQA, questions: list[Question]) -> EvalResult:
    """The real question set, real index, two configurations."""
    return evaluate_questions(real_qa, questions, ["dense", "default"], k=10,
                              source=str(QUESTIONS))


def test_evidence_snippets_occur_verbatim_in_the_corpus(questions: list[Question]) -> None:
    documents = {d.doc_id: d.text for d in read_corpus(CORPUS).documents}
    assert check_evidence_in_corpus(questions, documents) == []


def test_real_run_metrics_equal_pytrec_eval(real_result: EvalResult) -> None:
    assert [c.name for c in real_result.configs] == ["dense", "default"]
    for c in real_result.configs:
        assert all(len(docs) <= 10 for docs in c.run.values())
        assert_matches_pytrec_eval(c.run, real_result.qrels, c.per_query, c.metrics)


def test_qrels_hold_every_passage_with_evidence(
    real_qa: CrampQA, real_result: EvalResult, questions: list[Question]
) -> None:
    answerable = [q for q in questions if q.answerable]
    assert set(real_result.qrels) == {q.id for q in answerable}
    q = answerable[0]
    expected = set()
    for row in range(len(real_qa.data.passages)):
        if contains_evidence(real_qa.data.passages.text(row), q.evidence):
            expected.add(real_qa.data.passages.source_id(row))
    assert expected and set(real_result.qrels[q.id]) == expected


def test_records_follow_the_order_crampqa_shows(
    real_result: EvalResult, questions: list[Question]
) -> None:
    by_id = {q.id: q for q in questions}
    for c in real_result.configs:
        assert len(c.records) == len(questions)
        for r in c.records:
            assert r.first_id == rank_run(c.run[r.qid])[0]
            assert r.first_chars == len(r.first_text or "")
            if by_id[r.qid].answerable:
                hit = contains_evidence(r.first_text or "", by_id[r.qid].evidence)
                assert hit == (c.per_query[r.qid]["hit@1"] == 1.0) == (r.first_relevant_rank == 1)
        assert c.abstention is not None
        assert c.abstention["n_questions"] == len(questions)
        assert c.abstention["n_abstained"] == sum(bool(r.abstained) for r in c.records)
        assert c.coverage[0][1] == 1.0 and c.coverage[-1][1] > 0
        assert len(c.curves["hit"]) == 10
        assert c.curves["hit"][0] == pytest.approx(c.metrics["hit@1"])
        assert c.latency["p50_ms"] > 0


def test_comparison_against_the_first_config(real_result: EvalResult) -> None:
    (cmp,) = real_result.comparisons
    base, other = real_result.configs
    assert (cmp.baseline, cmp.config) == ("dense", "default")
    assert set(cmp.p_values) == {"hit@1", "MRR@10", "nDCG@10"}
    assert all(0 < p <= 1 for p in cmp.p_values.values())
    for qid, diff in cmp.per_query_diff.items():
        assert diff["hit@1"] == other.per_query[qid]["hit@1"] - base.per_query[qid]["hit@1"]
    assert cmp.mean_diff["MRR@10"] == pytest.approx(
        other.metrics["MRR@10"] - base.metrics["MRR@10"])


def test_trec_run_round_trips(real_result: EvalResult, tmp_path: Path) -> None:
    paths = write_runs(real_result, tmp_path / "run.trec")
    assert paths == [tmp_path / "run.trec", tmp_path / "run.trec.default"]
    assert run_paths(tmp_path / "r", ["a", "hybrid+rescore"])[1].name == "r.hybrid+rescore"
    for path, c in zip(paths, real_result.configs, strict=True):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == sum(len(d) for d in c.run.values())
        ranks: dict[str, list[int]] = {}
        for line in lines:
            qid, q0, _, rank, _, tag = line.split()
            assert q0 == "Q0" and tag == f"crampqa-{c.name}"
            ranks.setdefault(qid, []).append(int(rank))
        assert all(r == list(range(1, len(r) + 1)) for r in ranks.values())
        back = read_trec_run(path)
        assert back == {q: d for q, d in c.run.items() if d}
        for qid, docs in c.run.items():
            if docs:
                assert rank_run(back[qid]) == rank_run(docs)


def test_trec_run_ties_follow_trec_eval_and_bad_ids_fail(tmp_path: Path) -> None:
    path = write_trec_run(tmp_path / "t.trec", {"q": {"a": 1.0, "b": 1.0, "c": 2.0}}, "x")
    assert [line.split()[2] for line in path.read_text().splitlines()] == ["c", "b", "a"]
    with pytest.raises(EvalError, match="spaces"):
        write_trec_run(tmp_path / "u.trec", {"q": {"a b": 1.0}}, "x")


def test_report_folder(real_result: EvalResult, tmp_path: Path) -> None:
    md, js, png = write_report(real_result, tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "## Metrics" in text and "## Comparison with `dense`" in text and "## Misses" in text
    assert "| hit@1 |" in text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["baseline"] == "dense" and set(data["configs"]) == {"dense", "default"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


# --------------------------------------------------------------------------- fake engine


def test_fake_question_set_counts_unanswerable_and_unmatched(fake_qa: CrampQA) -> None:
    qs = [
        Question("a", "what does magnesium do for muscles", ("magnesium tells them to relax",),
                 True),
        Question("b", "what is the capital of peru", (), False),
        Question("c", "some question", ("this sentence is in no article at all",), True),
    ]
    result = evaluate_questions(fake_qa, qs, ["bm25", "hybrid"], k=5)
    assert result.without_relevant == ["c"]
    assert set(result.configs[0].per_query) == {"a"}
    ab = result.configs[0].abstention
    assert ab is not None and ab["n_answerable"] == 2 and ab["n_unanswerable"] == 1
    assert "hit@5" in result.configs[0].metrics and "MRR@5" in result.configs[0].metrics
    assert "no indexed passage" in markdown_report(result)


def test_config_names() -> None:
    assert resolve_configs(["dense", " bm25", "dense"]) == ["dense", "bm25"]
    assert CONFIGS["default"] == {} and CONFIGS["hybrid+rescore"]["rescore"] is True
    with pytest.raises(EvalError, match="Unknown configuration 'nope'"):
        resolve_configs(["nope"])


# --------------------------------------------------------------------------- CLI, question set


def real_args(real_index: Path, *extra: str) -> list[str]:
    return ["eval", str(QUESTIONS), "--index", str(real_index), "--corpus", str(CORPUS), *extra]


def engine_figures(qa: CrampQA, questions: list[Question], name: str,
                   k: int = 10) -> tuple[dict[str, float], dict[str, list[str]]]:
    """hit@1, MRR@k and the false abstention rate of configuration ``name``, and the
    source IDs each question gets, worked out from the engine's own answers and the
    evidence snippets (not by the evaluation code under test)."""
    table = qa.data.passages
    texts = [table.text(row) for row in range(len(table))]
    hits: list[float] = []
    reciprocal: list[float] = []
    false_abstentions = 0
    runs: dict[str, list[str]] = {}
    for q in questions:
        answer = qa.ask(q.question, k=k, **CONFIGS[name])
        runs[q.id] = [p.source_id for p in answer.passages]
        false_abstentions += q.answerable and answer.abstained
        if not q.answerable or not any(contains_evidence(t, q.evidence) for t in texts):
            continue  # no passage holds the evidence: not scored
        ranks = [i for i, p in enumerate(answer.passages[:k], start=1)
                 if contains_evidence(p.text, q.evidence)]
        hits.append(float(bool(ranks) and ranks[0] == 1))
        reciprocal.append(1.0 / ranks[0] if ranks else 0.0)
    assert hits, "no question was scored"
    answerable = sum(q.answerable for q in questions)
    figures = {"hit@1": sum(hits) / len(hits), f"MRR@{k}": sum(reciprocal) / len(reciprocal),
               "false abstention": false_abstentions / answerable}
    return figures, runs


def table_row(text: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_cli_table(real_index: Path, real_qa: CrampQA) -> None:
    """The table shows, for every configuration of --compare, the figures of the answers
    the engine gives."""
    result = cli.invoke(app, real_args(real_index, "--compare", "--limit", "12"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in ("Recall@10", "nDCG@10", "MAP", "latency p95 ms", "p hit@1"):
        assert word in out
    names = ["dense", "bm25", "hybrid", "fast", "default"]
    header = " ".join(out.split("┡")[0].split())
    assert [header.find(n) for n in names] == sorted(header.find(n) for n in names)
    questions = load_questions(QUESTIONS)[:12]
    expected = {n: engine_figures(real_qa, questions, n)[0] for n in names}
    for label, key in (("hit@1", "hit@1"), ("MRR@10", "MRR@10"),
                       ("false abstention (of 12)", "false abstention")):
        assert table_row(out, label) == [f"{expected[n][key]:.3f}" for n in names], label
    # the baseline's differences are dashes; the others' are the differences of the figures
    diffs = table_row(out, "Δ hit@1")
    assert diffs[0] == "—"
    assert diffs[1:] == [f"{expected[n]['hit@1'] - expected['dense']['hit@1']:+.3f}"
                         for n in names[1:]]


def test_cli_json(real_index: Path, real_qa: CrampQA) -> None:
    """--json gives the figures and the ranked passages of the engine's answers."""
    result = cli.invoke(app, real_args(real_index, "--json", "--limit", "10"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "questions" and data["n_queries"] == 10
    assert list(data["configs"]) == ["default"]
    questions = load_questions(QUESTIONS)[:10]
    figures, runs = engine_figures(real_qa, questions, "default")
    config = data["configs"]["default"]
    assert config["metrics"]["hit@1"] == pytest.approx(figures["hit@1"], abs=TOL)
    assert config["metrics"]["MRR@10"] == pytest.approx(figures["MRR@10"], abs=TOL)
    assert config["abstention"]["false_abstention_rate"] == \
        pytest.approx(figures["false abstention"], abs=TOL)
    assert {qid: rank_run(docs) for qid, docs in config["run"].items()} == runs
    for record, q in zip(config["records"], questions, strict=True):
        assert record["qid"] == q.id and record["first_id"] == runs[q.id][0]


def test_cli_report_and_run_out(real_index: Path, real_qa: CrampQA, tmp_path: Path) -> None:
    """The report shows the engine's figures, and each TREC run lists every question's
    passages in the order the engine ranks them."""
    result = cli.invoke(app, real_args(
        real_index, "--configs", "hybrid,default", "--limit", "15",
        "--report", str(tmp_path / "rep"), "--run-out", str(tmp_path / "runs" / "r.trec")))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    questions = load_questions(QUESTIONS)[:15]
    report = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    saved = json.loads((tmp_path / "rep" / "results.json").read_text(encoding="utf-8"))
    found = {}
    for name, path in (("hybrid", "r.trec"), ("default", "r.trec.default")):
        figures, runs = found[name] = engine_figures(real_qa, questions, name)
        trec = read_trec_run(tmp_path / "runs" / path)
        assert {qid: rank_run(docs) for qid, docs in trec.items()} == runs
        assert saved["configs"][name]["metrics"]["hit@1"] == \
            pytest.approx(figures["hit@1"], abs=TOL)
    hybrid, default = found["hybrid"][0], found["default"][0]
    # shares are shown with their counts: "0.867 (13/15)"
    assert re.search(rf"\| hit@1 \| {hybrid['hit@1']:.3f} \(\d+/15\) \| "
                     rf"{default['hit@1']:.3f} \(\d+/15\) \|", report), report
    assert f"| MRR@10 | {hybrid['MRR@10']:.3f} | {default['MRR@10']:.3f} |" in report
    assert re.search(rf"\| false abstention \(of 15\) \| {hybrid['false abstention']:.3f}"
                     rf"( \(\d+/\d+\))? \| {default['false abstention']:.3f}", report), report


def test_cli_help_documents_run_out_and_limit() -> None:
    result = cli.invoke(app, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "FILE.<config>" in result.stdout and "--limit" in result.stdout


# --------------------------------------------------------------------------- BEIR


def write_beir(folder: Path, qrels: str | None = None, queries: list[dict[str, Any]] | None = None,
               corpus: bool = True) -> Path:
    """A tiny BEIR folder about cramps and minerals."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = [
        ("d1", "Magnesium", "Magnesium helps muscles relax after they contract."),
        ("d2", "Calcium", "Calcium makes muscles contract; too little causes spasms."),
        ("d3", "Vitamin D", "Vitamin D helps the gut absorb calcium from food."),
        ("d4", "B12", "Vitamin B12 deficiency can cause tingling and night cramps."),
        ("d5", "Potassium", "Bananas contain potassium, an electrolyte for nerves."),
        ("d6", "Sleep", "Stretching the calves before bed may prevent night cramps."),
    ]
    if corpus:
        (folder / "corpus.jsonl").write_text("".join(
            json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in docs),
            encoding="utf-8")
    queries = queries if queries is not None else [
        {"_id": "q1", "text": "which mineral relaxes muscles"},
        {"_id": "q2", "text": "what helps absorb calcium"},
        {"_id": "q3", "text": "why do I get cramps at night"},
        {"_id": "q4", "text": "are bananas good for nerves"},
        {"_id": "q5", "text": "a query without judgements"},
    ]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels").mkdir(exist_ok=True)
    if qrels is None:
        qrels = ("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2\td3\t1\n"
                 "q3\td4\t2\nq3\td6\t1\nq3\td1\t0\nq4\td5\t1\n")
    (folder / "qrels" / "dev.tsv").write_text(qrels, encoding="utf-8")
    return folder


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tinybeir")


def fake_open(index_root: Path, fake_settings: Any, seen: list[Path | None]) -> Any:
    def opener(corpus: Path | None, index: Path | None, progress: Any = None) -> CrampQA:
        seen.append(index)
        return CrampQA.open(corpus, index_root, settings=fake_settings, embedder=FakeEmbedder())
    return opener


#: Documents no query is about, so that a cut-off of 5 leaves relevant documents out.
FILLERS = [
    ("f01", "Shoes", "Running shoes should fit well and support the arch of the foot."),
    ("f02", "Hydration", "Drink water through the day, more when it is hot."),
    ("f03", "Posture", "Sitting upright at a desk can ease back pain."),
    ("f04", "Weather", "Cold weather can make joints feel stiff in the morning."),
    ("f05", "Cycling", "A bicycle saddle at the right height protects the knees."),
    ("f06", "Tea", "Green tea holds caffeine and small amounts of fluoride."),
    ("f07", "Shift work", "Night shifts disturb the body clock and the quality of sleep."),
    ("f08", "Swimming", "Swimming trains the whole body while sparing the joints."),
    ("f09", "Sunscreen", "Sunscreen blocks the rays the skin uses to make vitamin D."),
    ("f10", "Fruit", "Dried apricots and avocados are rich in potassium."),
    ("f11", "Stairs", "Taking the stairs is a simple way to move more each day."),
    ("f12", "Salt", "Too much salt raises blood pressure in many people."),
    ("f13", "Noise", "Earplugs can help light sleepers through a noisy night."),
    ("f14", "Plants", "Houseplants need light, water and the occasional repotting."),
]

#: Several relevant documents per query, some worded unlike the query (so not retrieved
#: at k=5), and graded relevance: recall, MAP and nDCG each divide by something the run
#: alone does not show.
DEEP_QRELS = ("query-id\tcorpus-id\tscore\n"
              "q1\td1\t2\nq1\td2\t1\nq1\tf10\t1\nq1\tf12\t2\n"
              "q2\td3\t1\nq2\tf09\t2\nq2\tf06\t1\n"
              "q3\td4\t2\nq3\td6\t1\nq3\tf07\t1\nq3\tf13\t2\nq3\td1\t0\n"
              "q4\td5\t1\nq4\tf10\t1\n")


def _first_relevant(ranking: list[str], judged: dict[str, int]) -> int | None:
    return next((i for i, d in enumerate(ranking, start=1) if judged.get(d, 0) > 0), None)


def test_beir_metrics_equal_pytrec_eval(beir_dir: Path, tmp_path: Path, fake_settings) -> None:
    write_beir(beir_dir, qrels=DEEP_QRELS)
    with (beir_dir / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        for doc_id, title, text in FILLERS:
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    qa = CrampQA.open(beir_dir, tmp_path / "idx", settings=fake_settings,
                      embedder=FakeEmbedder())
    beir = prepare_beir(beir_dir, "dev")
    assert list(beir.queries) == ["q1", "q2", "q3", "q4"]
    k = 5
    result = evaluate_beir(qa, beir, ["default", "bm25", "dense"], k=k, split="dev")
    assert result.kind == "beir" and len(result.comparisons) == 2
    partial = 0  # queries with some but not all relevant documents in the top k
    for c in result.configs:
        assert c.abstention is None and c.coverage == []
        assert all(len(docs) <= k for docs in c.run.values())
        assert_matches_pytrec_eval(c.run, beir.qrels, c.per_query, c.metrics, k=k)
        for qid, docs in c.run.items():
            judged = beir.qrels[qid]
            found = sum(judged.get(d, 0) > 0 for d in docs)
            partial += 0 < found < sum(r > 0 for r in judged.values())
    assert partial >= 3, "the denominators of recall, MAP and nDCG were not exercised"

    report = markdown_report(result)
    for c in result.configs:
        misses = []
        for qid, docs in c.run.items():
            first = _first_relevant(rank_run(docs), beir.qrels[qid])
            if first != 1:
                misses.append((qid, f"no relevant document in the top {k}" if first is None
                               else f"relevant first at rank {first}"))
        assert f"### {c.name} ({len(misses)})" in report
        for qid, problem in misses:
            assert f"| {qid} | {problem} | " in report, (c.name, qid, problem)
    assert any(f"### {c.name} (0)" not in report for c in result.configs), (
        "no configuration misses anything: the report's misses are not exercised")


def test_cli_beir_with_limit_uses_the_beir_index(
    beir_dir: Path, tmp_path: Path, fake_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path | None] = []
    monkeypatch.setattr(runner_mod, "open_index", fake_open(tmp_path / "idx", fake_settings,
                                                            seen))
    result = cli.invoke(app, ["eval", str(beir_dir), "--configs", "default,bm25", "--json",
                              "--limit", "3", "-k", "4", "--report", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "beir" and data["split"] == "dev" and data["n_queries"] == 3
    assert all(len(d) <= 4 for d in data["configs"]["default"]["run"].values())
    assert seen == [beir_index_dir(beir_dir)]
    assert seen[0] == PROJECT_ROOT / "indexes" / "beir-tinybeir"
    assert (tmp_path / "rep" / "plot.png").stat().st_size > 0


def _no_index(*args: object, **kwargs: object) -> CrampQA:
    raise AssertionError("bad input must fail before any index is opened")


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda d: (d / "queries.jsonl").unlink(), [], "queries.jsonl"),
        (lambda d: (d / "corpus.jsonl").unlink(), [], "BEIR corpus not found"),
        (lambda d: None, ["--split", "test"], "available splits: dev"),
        (lambda d: (d / "qrels" / "dev.tsv").write_text("q1\td1\t1\nq9\td2\t1\n"), [],
         "missing from"),
        (lambda d: (d / "qrels" / "dev.tsv").write_text("q1\tnope\t1\n"), [],
         "not in corpus"),
        (lambda d: (d / "queries.jsonl").write_text(""), [], "contains no queries"),
        (lambda d: (d / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n"), [],
         "contains no judgements"),
        (lambda d: (d / "qrels" / "dev.tsv").write_text("q1\td1\t0\n"), [],
         "has a relevant document"),
        (lambda d: (d / "queries.jsonl").write_text(
            (d / "queries.jsonl").read_text().replace("which mineral relaxes muscles", "  ")),
         [], "BEIR query 'q1' in"),
        (lambda d: None, ["--limit", "0"], "--limit must be"),
        (lambda d: None, ["--config", "nope"], "Unknown configuration 'nope'"),
        (lambda d: None, ["--config", "dense", "--compare"], "Use only one of"),
        (lambda d: None, ["--corpus", "corpus"], "--corpus does not apply"),
    ],
)
def test_cli_beir_bad_input_is_one_line_exit_7(
    beir_dir: Path, setup: Any, args: list[str], message: str, capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_mod, "open_index", _no_index)
    setup(beir_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(beir_dir), *args])
    assert exit_info.value.code == 7
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("", "contains no questions"),
        ("{bad json\n", "invalid JSON"),
        (json.dumps({"id": "a", "question": "x" * 3000, "evidence": [], "answerable": False}),
         "Question 'a' in"),
    ],
)
def test_cli_bad_question_file_is_exit_7(
    tmp_path: Path, content: str | None, message: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod, "open_index", _no_index)
    path = tmp_path / "qs.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(path), "--json"])
    assert exit_info.value.code == 7
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"] == "eval_error"
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
