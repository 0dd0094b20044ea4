"""crampqa.evaluation.datasets: question sets, evidence matching and BEIR folders."""

from __future__ import annotations

import gzip
import json
from collections.abc import Generator
from pathlib import Path

import pytest

from crampqa.errors import EvalError
from crampqa.evaluation.datasets import (
    BeirSet,
    Question,
    check_evidence_in_corpus,
    contains_evidence,
    iter_beir_corpus,
    load_beir,
    load_questions,
    normalize_for_match,
    validate_qrels_docs,
)

ROOT = Path(__file__).resolve().parent.parent
#: The shared data sets sit beside the repository (a copy of shared/ in CI).
MEDQUAD = ROOT.parent / "shared" / "datasets" / "medquad"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def q(qid: str = "q1", **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": qid,
        "question": "Why do my calves cramp at night?",
        "evidence": ["Night cramps are common."],
        "answerable": True,
    }
    row.update(over)
    return row


# --------------------------------------------------------------------------- questions


def test_load_questions_ok(tmp_path: Path) -> None:
    path = tmp_path / "qs.jsonl"
    path.write_text(
        json.dumps(q("a", doc_ids=["d1"], tags=["night"]))
        + "\n\n   \n"
        + json.dumps(q("b", evidence=[], answerable=False, extra="ignored"))
        + "\n",
        encoding="utf-8",
    )
    got = load_questions(path)
    assert got == [
        Question(
            "a",
            "Why do my calves cramp at night?",
            ("Night cramps are common.",),
            True,
            ("d1",),
            ("night",),
        ),
        Question("b", "Why do my calves cramp at night?", (), False),
    ]
    with pytest.raises(AttributeError):
        got[0].id = "x"  # type: ignore[misc]


def test_load_questions_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(EvalError, match="not found") as err:
        load_questions(path)
    assert str(path) in str(err.value)
    with pytest.raises(EvalError, match="is not a file"):
        load_questions(tmp_path)


def test_load_questions_bad_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(q("a")) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(EvalError) as err:
        load_questions(path)
    assert f"{path}:3" in str(err.value) and "invalid JSON" in str(err.value)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r":1: expected a JSON object, got list"):
        load_questions(path)


def test_load_questions_duplicate_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qs.jsonl", [q("a"), q("b"), q("a")])
    with pytest.raises(EvalError) as err:
        load_questions(path)
    msg = str(err.value)
    assert f"{path}:3" in msg and "duplicate question id 'a'" in msg and "line 1" in msg


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"question": "x", "evidence": ["e"], "answerable": True}, "missing field 'id'"),
        (q(question=""), "field 'question' must be a non-empty string"),
        (q(id=7), "field 'id' must be a non-empty string"),
        ({"id": "a", "question": "x", "answerable": True}, "missing field 'evidence'"),
        (q(evidence="one snippet"), "field 'evidence' must be a list"),
        (q(evidence=["ok", "  "]), "field 'evidence' must be a list of non-empty strings"),
        ({"id": "a", "question": "x", "evidence": ["e"]}, "missing field 'answerable'"),
        (q(answerable="yes"), "field 'answerable' must be true or false"),
        (q(answerable=1), "field 'answerable' must be true or false"),
        (q(doc_ids="d1"), "field 'doc_ids' must be a list"),
        (q(tags=[1]), "field 'tags' must be a list"),
        (q(evidence=[]), "answerable but has no evidence"),
    ],
)
def test_load_questions_bad_fields(tmp_path: Path, row: dict[str, object], needle: str) -> None:
    path = write_jsonl(tmp_path / "qs.jsonl", [q("first"), row])
    with pytest.raises(EvalError, match=needle) as err:
        load_questions(path)
    assert f"{path}:2" in str(err.value)


def test_load_questions_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "qs.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(EvalError, match="contains no questions") as err:
        load_questions(path)
    assert str(path) in str(err.value)


def test_load_questions_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "qs.jsonl"
    path.write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises(EvalError, match="not valid UTF-8"):
        load_questions(path)


# --------------------------------------------------------------------------- matching


def test_normalize_for_match() -> None:
    assert normalize_for_match("  Don\u2019t\n\tSTRETCH \u201ctoo\u201d\u00a0hard  ") == (
        'don\'t stretch "too" hard'
    )
    assert normalize_for_match("STRASSE") == normalize_for_match("straße")
    assert normalize_for_match(" \n ") == ""


def test_contains_evidence() -> None:
    passage = "Leg cramps\nare often   linked to \u2018low\u2019 MAGNESIUM."
    assert contains_evidence(passage, ["are often linked to 'low' magnesium"])
    assert contains_evidence(passage, ["absent", "LEG CRAMPS are"])
    assert not contains_evidence(passage, ["potassium"])
    assert not contains_evidence(passage, [])
    assert not contains_evidence(passage, ["   "])  # blank snippets never match


def test_check_evidence_in_corpus() -> None:
    docs = {"d1": "Night cramps are common in older adults.", "d2": "Drink water."}
    questions = [
        Question("ok", "?", ("night  CRAMPS are common",), True, ("d1",)),
        Question("nowhere", "?", ("quinine cures cramps",), True),
        Question("wrongdoc", "?", ("drink water",), True, ("d1",)),
        Question("unknowndoc", "?", ("drink water",), True, ("d9",)),
        Question("unans", "?", (), False),
    ]
    problems = check_evidence_in_corpus(questions, docs)
    assert len(problems) == 4
    assert any("'nowhere'" in p and "found in no document" in p for p in problems)
    assert any("'wrongdoc'" in p and "not in its doc_ids" in p for p in problems)
    assert any("'unknowndoc'" in p and "'d9' is not in the corpus" in p for p in problems)
    assert check_evidence_in_corpus(questions[:1], docs) == []


# --------------------------------------------------------------------------- BEIR


def make_beir(
    folder: Path,
    *,
    queries: list[object] | None = None,
    qrels: str | None = None,
    corpus: list[object] | None = None,
    gz: bool = False,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    write_jsonl(
        folder / "queries.jsonl",
        queries
        if queries is not None
        else [
            {"_id": "q1", "text": "cramps at night"},
            {"_id": "q2", "text": "magnesium"},
            {"_id": "q3", "text": "no qrels for me"},
        ],
    )
    (folder / "qrels" / "dev.tsv").write_text(
        qrels
        if qrels is not None
        else "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td2\t2\n",
        encoding="utf-8",
    )
    rows = (
        corpus
        if corpus is not None
        else [
            {"_id": "d1", "title": "Cramps", "text": "Night cramps are common."},
            {"_id": "d2", "text": "Magnesium is a mineral."},
        ]
    )
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        (folder / "corpus.jsonl").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_load_beir_ok(tmp_path: Path, gz: bool) -> None:
    folder = make_beir(tmp_path / "set", gz=gz)
    beir = load_beir(folder)
    assert isinstance(beir, BeirSet)
    assert beir.corpus_path.name == ("corpus.jsonl.gz" if gz else "corpus.jsonl")
    assert beir.queries == {"q1": "cramps at night", "q2": "magnesium"}  # q3 has no qrels
    assert beir.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d2": 2}}
    docs = list(iter_beir_corpus(beir.corpus_path))
    assert docs == [
        ("d1", "Cramps", "Night cramps are common."),
        ("d2", "", "Magnesium is a mineral."),
    ]
    validate_qrels_docs(beir, {d for d, _, _ in docs})


def test_load_beir_qrels_without_header(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "set", qrels="q1\td1\t1\n\nq2\td2\t1\n")
    assert load_beir(folder).qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_load_beir_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"BEIR folder .*nope not found"):
        load_beir(tmp_path / "nope")


def test_load_beir_missing_files(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "set")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(EvalError, match=r"corpus not found .* corpus\.jsonl or corpus\.jsonl\.gz"):
        load_beir(folder)
    folder = make_beir(tmp_path / "set2")
    with pytest.raises(EvalError, match=r"test\.tsv not found; available splits: dev"):
        load_beir(folder, split="test")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(EvalError, match=r"queries\.jsonl not found"):
        load_beir(folder)


def test_load_beir_unknown_query_ids(tmp_path: Path) -> None:
    qrels = "q1\td1\t1\n" + "".join(f"ghost{i}\td1\t1\n" for i in range(8))
    folder = make_beir(tmp_path / "set", qrels=qrels)
    with pytest.raises(EvalError) as err:
        load_beir(folder)
    msg = str(err.value)
    assert "8 query id(s) missing" in msg and "'ghost0'" in msg and "and 3 more" in msg
    assert "dev.tsv" in msg


def test_load_beir_empty_sets(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "a", qrels="query-id\tcorpus-id\tscore\n")
    with pytest.raises(EvalError, match="contains no judgements"):
        load_beir(folder)
    folder = make_beir(tmp_path / "b", queries=[])
    with pytest.raises(EvalError, match="contains no queries"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("qrels", "needle"),
    [
        ("q1\td1\n", r"dev\.tsv:1: expected 3 tab-separated fields"),
        ("q1\td1\t1\nq1 d2 1\n", r"dev\.tsv:2: expected 3 tab-separated fields"),
        ("q1\td1\thigh\n", r"dev\.tsv:1: relevance score 'high' is not an integer"),
        ("q1\td1\t1\nq1\td1\t2\n", r"dev\.tsv:2: query 'q1' judges document 'd1' twice"),
    ],
)
def test_load_beir_malformed_qrels(tmp_path: Path, qrels: str, needle: str) -> None:
    folder = make_beir(tmp_path / "set", qrels=qrels)
    with pytest.raises(EvalError, match=needle):
        load_beir(folder)


@pytest.mark.parametrize(
    ("queries", "needle"),
    [
        ([{"_id": "q1", "text": "a"}, "not an object"], r"queries\.jsonl:2: expected a JSON"),
        ([{"text": "a"}], r"queries\.jsonl:1: field '_id'"),
        ([{"_id": "q1"}], r"queries\.jsonl:1: field 'text' must be a string"),
        ([{"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}], r":2: duplicate query id"),
    ],
)
def test_load_beir_malformed_queries(tmp_path: Path, queries: list[object], needle: str) -> None:
    folder = make_beir(tmp_path / "set", queries=queries, qrels="q1\td1\t1\n")
    with pytest.raises(EvalError, match=needle):
        load_beir(folder)


def test_load_beir_bad_query_json(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "set")
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    with pytest.raises(EvalError, match=r"queries\.jsonl:4: invalid JSON"):
        load_beir(folder)


@pytest.mark.parametrize("gz", [False, True])
def test_iter_beir_corpus_errors(tmp_path: Path, gz: bool) -> None:
    folder = make_beir(
        tmp_path / "set",
        gz=gz,
        corpus=[{"_id": "d1", "text": "x"}, {"_id": "d1", "text": "y"}],
    )
    path = load_beir(folder).corpus_path
    with pytest.raises(EvalError, match=r":2: duplicate document id 'd1'"):
        list(iter_beir_corpus(path))
    bad = make_beir(tmp_path / "bad", gz=gz, corpus=[{"_id": "d1", "title": "t"}])
    with pytest.raises(EvalError, match=r":1: document 'd1' needs string 'text'"):
        list(iter_beir_corpus(load_beir(bad).corpus_path))
    with pytest.raises(EvalError, match=r"BEIR corpus .* not found"):
        list(iter_beir_corpus(tmp_path / "corpus.jsonl"))


def test_iter_beir_corpus_bad_json_and_truncated_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "corpus.jsonl"
    plain.write_text('{"_id": "d1", "text": "x"}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"corpus\.jsonl:3: invalid JSON"):
        list(iter_beir_corpus(plain))
    whole = gzip.compress(b"".join(b'{"_id": "d%d", "text": "x"}\n' % i for i in range(2000)))
    truncated = tmp_path / "corpus.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EvalError, match="truncated or corrupt"):
        list(iter_beir_corpus(truncated))


def test_iter_beir_corpus_streams(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "set", gz=True)
    it = iter_beir_corpus(load_beir(folder).corpus_path)
    assert isinstance(it, Generator)  # streamed lazily, not read into a list
    assert next(it)[0] == "d1"
    it.close()  # stopping early is fine


def test_validate_qrels_docs(tmp_path: Path) -> None:
    beir = load_beir(make_beir(tmp_path / "set"))
    with pytest.raises(EvalError) as err:
        validate_qrels_docs(beir, {"d1"})
    msg = str(err.value)
    assert "1 document id(s) not in corpus" in msg and "'d2'" in msg


@pytest.mark.shared_data  # in CI a skip is a failure (tests/conftest.py)
@pytest.mark.skipif(not MEDQUAD.is_dir(),
                    reason=f"real BEIR set not present at {MEDQUAD} (../shared/datasets/medquad)")
def test_real_medquad_set() -> None:
    beir = load_beir(MEDQUAD, split="dev")
    assert beir.corpus_path.name == "corpus.jsonl.gz"
    assert len(beir.queries) == 1000
    assert set(beir.qrels) == set(beir.queries)
    doc_ids = set()
    for doc_id, title, text in iter_beir_corpus(beir.corpus_path):
        assert isinstance(title, str) and isinstance(text, str)
        doc_ids.add(doc_id)
    assert len(doc_ids) == 16373
    validate_qrels_docs(beir, doc_ids)
