"""Presenting an evaluation: terminal table, JSON, Markdown report, plot and TREC run files."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crampqa.errors import EvalError
from crampqa.evaluation.metrics import Run, rank_run
from crampqa.evaluation.runner import ConfigResult, EvalResult, compared_metrics

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

MISSES_SHOWN = 100  # per configuration, in report.md
_NO_VALUE = "—"
_WS = re.compile(r"\s")


# --------------------------------------------------------------------------- rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return _NO_VALUE if value is None else f"{value:.{digits}f}"


def _rate(c: ConfigResult, rate: str, count: str, total: str) -> str:
    """An abstention rate with its count: ``0.360 (9/25)``."""
    a = c.abstention
    if a is None or rate not in a:
        return _NO_VALUE
    shown = f"{float(a[rate]):.3f}"
    return f"{shown} ({int(a[count])}/{int(a[total])})" if count in a and total in a else shown


def _share(c: ConfigResult, name: str) -> str:
    """A hit rate with its count of scored queries: ``0.667 (8/12)``."""
    value = c.metrics.get(name)
    if value is None:
        return _NO_VALUE
    hits = sum(1 for row in c.per_query.values() if row.get(name, 0.0) > 0)
    return f"{value:.3f} ({hits}/{len(c.per_query)})"


def p_value(p: float) -> str:
    """A p-value as printed: three decimals, or "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


IN_SAMPLE = "in-sample"


def column_names(result: EvalResult) -> list[str]:
    """Configuration names as column headers; "(in-sample)" beside each when the question
    set was used for tuning."""
    return [f"{c.name} ({IN_SAMPLE})" if result.in_sample else c.name for c in result.configs]


def _count(result: EvalResult, key: str) -> int:
    a = result.configs[0].abstention
    return int(a.get(key, 0)) if a else 0


def metric_rows(result: EvalResult) -> list[tuple[str, list[str]]]:
    """``(label, one cell per configuration)`` rows shared by the table and report.md."""
    k = result.k
    cols = result.configs
    rows: list[tuple[str, list[str]]] = []
    # P@1 is left out: with relevant/not relevant judgements it always equals hit@1
    for j in (1, 3, 5):
        if j <= k:
            rows.append((f"hit@{j}", [_share(c, f"hit@{j}") for c in cols]))
    labels = {f"recall@{k}": f"Recall@{k}"}
    for name in (f"MRR@{k}", f"nDCG@{k}", f"recall@{k}", "MAP"):
        rows.append((labels.get(name, name), [_fmt(c.metrics.get(name)) for c in cols]))
    if result.kind == "questions":
        rows.append((f"correct abstention (of {_count(result, 'n_unanswerable')})",
                     [_rate(c, "correct_abstention_rate", "n_correct_abstentions",
                            "n_unanswerable") for c in cols]))
        rows.append((f"false abstention (of {_count(result, 'n_answerable')})",
                     [_rate(c, "false_abstention_rate", "n_false_abstentions", "n_answerable")
                      for c in cols]))
        rows.append(("abstains below", [_fmt(c.abstain_threshold, 2) for c in cols]))
        rows.append(("1st passage mean chars", [_fmt(c.mean_first_chars, 0) for c in cols]))
    rows.append(("latency p50 ms", [_fmt(c.latency["p50_ms"], 1) for c in cols]))
    rows.append(("latency p95 ms", [_fmt(c.latency["p95_ms"], 1) for c in cols]))
    by_config = {cmp.config: cmp for cmp in result.comparisons}
    if by_config:
        for measure in compared_metrics(k):
            deltas, pvals = [], []
            for c in cols:
                cmp = by_config.get(c.name)
                deltas.append(_NO_VALUE if cmp is None else f"{cmp.mean_diff[measure]:+.3f}")
                pvals.append(_NO_VALUE if cmp is None else p_value(cmp.p_values[measure]))
            rows.append((f"Δ {measure}", deltas))
            rows.append((f"p {measure}", pvals))
    return rows


def shown_path(path: str | Path) -> str:
    """``path`` as people read it: relative to the working directory when it lies inside
    it, as given otherwise (so one machine's absolute paths stay out of shared output)."""
    given = Path(path)
    if not given.is_absolute():
        return str(path)
    try:
        cwd = Path.cwd()
    except OSError:  # the working directory was removed
        return str(path)
    for candidate, base in ((given, cwd), (given.resolve(), cwd.resolve())):
        if candidate.is_relative_to(base):
            return candidate.relative_to(base).as_posix()
    return str(path)


def _caption(result: EvalResult) -> str:
    what = "questions" if result.kind == "questions" else f"queries ({result.split})"
    n_eval = len(result.configs[0].per_query)
    unit = "passages" if result.kind == "questions" else "documents"
    tuned = (f" · {IN_SAMPLE}: this question set was used for tuning, so these figures "
             "overstate how crampqa does on new questions" if result.in_sample else "")
    return (f"{shown_path(result.source)} · {result.n_queries} {what}, {n_eval} scored "
            f"against relevant {unit} · k={result.k} · index {shown_path(result.index)}"
            f"{tuned}")


#: What the measures mean, for report.md (and, shortened, under the plot).
GLOSSARY = (
    ("hit@k", "share of questions with a relevant result among the first k (8/12: 8 of "
              "the 12 scored questions)"),
    ("MRR@k", "mean reciprocal rank of the first relevant result: 1 when it comes first, "
              "0.5 second, 0 when none is in the first k"),
    ("nDCG@k", "ranking quality from 0 to 1: relevant results near the top count most "
               "(graded relevance for a BEIR folder); 1 is the ideal order"),
    ("Recall@k", "share of a question's relevant results found in the first k, averaged"),
    ("MAP", "mean average precision: the precision at each relevant result, averaged"),
    ("correct / false abstention", "share of the questions the sources do not cover on "
                                   "which crampqa says so / of answerable ones on which "
                                   "it wrongly does"),
    ("abstains below", "the confidence under which the configuration abstains: the "
                       "answer scorer's threshold, or fusion's without it"),
)

#: The glossary in one short block, under the plot.
PLOT_GLOSSARY = (
    "hit@k: share of questions with a relevant result in the first k · recall@k: share of "
    "their relevant results found in the first k\n"
    "coverage: share of questions answered (not abstained on) · answered accuracy: share "
    "of the answered ones whose first result is relevant")


def notes(result: EvalResult) -> list[str]:
    """Short remarks to print under the table."""
    out: list[str] = []
    if result.without_relevant:
        shown = ", ".join(result.without_relevant[:5])
        more = f" and {len(result.without_relevant) - 5} more" if len(
            result.without_relevant) > 5 else ""
        what = ("answerable question(s) have no indexed passage containing their evidence"
                if result.kind == "questions" else "query(ies) have no relevant document")
        out.append(f"note: {len(result.without_relevant)} {what} ({shown}{more}); "
                   "they get no retrieval metrics.")
    if result.comparisons:
        out.append(f"Δ: mean per-question difference to {result.baseline} (the baseline); "
                   "p: two-sided paired randomisation test, 10,000 sign flips.")
    return out


# --------------------------------------------------------------------------- terminal / JSON


def metrics_table(result: EvalResult) -> Table:
    """A rich table: one row per measure, one column per configuration."""
    from rich.table import Table

    table = Table(title="crampqa eval", caption=_caption(result), caption_justify="left")
    table.add_column("measure", no_wrap=True)
    for name in column_names(result):
        table.add_column(name, justify="right", overflow="fold")
    for label, cells in metric_rows(result):
        table.add_row(label, *cells)
    return table


def print_result(result: EvalResult, console: Console) -> None:
    """Print the metrics table and its notes."""
    console.print(metrics_table(result))
    from crampqa.terminal import visible

    for line in notes(result):
        console.print(visible(line), markup=False, highlight=False)


def result_json(result: EvalResult) -> str:
    """The ``--json`` output (the same object as ``results.json``)."""
    return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)


# --------------------------------------------------------------------------- TREC runs


def write_trec_run(path: Path, run: Run, tag: str) -> Path:
    """Write ``run`` as TREC lines ``qid Q0 docid rank score tag`` in trec_eval order."""
    for name, value in (("tag", tag), *((f"query id {q!r}", q) for q in run)):
        if not value or _WS.search(value):
            raise EvalError(f"Cannot write a TREC run: {name} must be non-empty without spaces.")
    lines: list[str] = []
    for qid in sorted(run):
        for rank, docid in enumerate(rank_run(run[qid]), start=1):
            if _WS.search(docid):
                raise EvalError(f"Cannot write a TREC run: document id {docid!r} has spaces.")
            lines.append(f"{qid} Q0 {docid} {rank} {run[qid][docid]!r} {tag}\n")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"Cannot write the run file {path}: {exc.strerror or exc}.") from None
    return path


def read_trec_run(path: Path) -> Run:
    """Parse a TREC run file back into ``qid -> docid -> score``."""
    run: Run = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise EvalError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag'.")
        run.setdefault(fields[0], {})[fields[2]] = float(fields[4])
    return run


def run_paths(path: Path, names: Sequence[str]) -> list[Path]:
    """``path`` for the first configuration, ``path.<name>`` for each other one."""
    path = Path(path)
    return [path if i == 0 else path.with_name(f"{path.name}.{n}") for i, n in enumerate(names)]


def write_runs(result: EvalResult, path: Path) -> list[Path]:
    """Write every configuration's run (see :func:`run_paths`); tag ``crampqa-<config>``."""
    targets = run_paths(path, [c.name for c in result.configs])
    return [write_trec_run(p, c.run, f"crampqa-{c.name}")
            for p, c in zip(targets, result.configs, strict=True)]


# --------------------------------------------------------------------------- report folder


def _md(text: object, limit: int | None = None) -> str:
    """A Markdown table cell: one line, pipes escaped, optionally shortened."""
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("|", "\\|")


def _misses(result: EvalResult, c: ConfigResult) -> list[tuple[str, str, str, str, str]]:
    """(id, problem, question, expected, what came first) for every miss of ``c``."""
    rows: list[tuple[str, str, str, str, str]] = []
    for r in c.records:
        if result.kind == "questions":
            if r.answerable and r.abstained:
                problem = "abstained on an answerable question"
            elif r.answerable and r.first_relevant_rank != 1:
                problem = (f"no evidence in the top {result.k}"
                           if r.first_relevant_rank is None
                           else f"evidence first at rank {r.first_relevant_rank}")
            elif not r.answerable and not r.abstained:
                problem = "answered an unanswerable question"
            else:
                continue
            expected = " / ".join(r.expected) or "(not answerable)"
            first = f"`{r.first_id}` {r.first_text or ''}" if r.first_id else "(nothing)"
        else:
            if r.first_relevant_rank == 1 or r.n_relevant == 0:
                continue
            problem = (f"no relevant document in the top {result.k}"
                       if r.first_relevant_rank is None
                       else f"relevant first at rank {r.first_relevant_rank}")
            expected = ", ".join(r.expected)
            first = f"`{r.first_id}`" if r.first_id else "(nothing)"
        rows.append((r.qid, problem, r.question, expected, first))
    return rows


def markdown_report(result: EvalResult) -> str:
    """``report.md``: metrics, comparison with p-values, and the misses of each config."""
    names = column_names(result)
    out = ["# crampqa evaluation", "", _caption(result), ""]
    out += ["## Metrics", "", "| measure | " + " | ".join(names) + " |",
            "| --- |" + " ---: |" * len(names)]
    for label, cells in metric_rows(result):
        out.append(f"| {_md(label)} | " + " | ".join(_md(c) for c in cells) + " |")
    out.append("")
    out += [f"- {n}" for n in notes(result)]
    out += ["", "### What the measures mean", ""]
    out += [f"- **{name}**: {meaning}." for name, meaning in GLOSSARY]
    if result.comparisons:
        out += ["", f"## Comparison with `{result.baseline}`", "",
                "Mean per-question difference (config − baseline) and two-sided paired "
                "randomisation test p-value; better / worse counts questions.", "",
                "| config | measure | mean Δ | p | better | worse |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        for cmp in result.comparisons:
            for m in compared_metrics(result.k):
                diffs = [d[m] for d in cmp.per_query_diff.values()]
                out.append(f"| {_md(cmp.config)} | {m} | {cmp.mean_diff[m]:+.3f} | "
                           f"{p_value(cmp.p_values[m])} | {sum(d > 0 for d in diffs)} | "
                           f"{sum(d < 0 for d in diffs)} |")
    out += ["", "## Misses", ""]
    for c in result.configs:
        misses = _misses(result, c)
        out += [f"### {c.name} ({len(misses)})", ""]
        if not misses:
            out += ["None.", ""]
            continue
        out += ["| id | problem | question | expected | what came first |",
                "| --- | --- | --- | --- | --- |"]
        for qid, problem, question, expected, first in misses[:MISSES_SHOWN]:
            out.append(f"| {_md(qid)} | {_md(problem)} | {_md(question, 200)} | "
                       f"{_md(expected, 300)} | {_md(first, 300)} |")
        if len(misses) > MISSES_SHOWN:
            out.append(f"\n… and {len(misses) - MISSES_SHOWN} more (see results.json).")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _width(i: int, n: int) -> float:
    """Line width: earlier configurations drawn wider so identical curves stay visible."""
    return 1.2 + 1.6 * (n - 1 - i) / max(n - 1, 1)


def same_as(result: EvalResult) -> dict[str, str]:
    """Configurations whose curves equal an earlier one's: ``{name: earlier name}``."""
    found: dict[str, str] = {}
    for i, c in enumerate(result.configs):
        for earlier in result.configs[:i]:
            if earlier.name not in found and earlier.curves == c.curves and \
                    earlier.coverage == c.coverage:
                found[c.name] = earlier.name
                break
    return found


#: Under the coverage panel: why its right end lies below hit@1.
COVERAGE_CAPTION = (
    "At full coverage every question is answered, the ones the sources do not cover included, "
    "and those count as wrong:\naccuracy there is hit@1 × the share of answerable questions, "
    "so it lies below hit@1. × marks where each configuration's own threshold puts it.")


def _threshold_point(c: ConfigResult, threshold: float) -> tuple[float, float] | None:
    """(coverage, accuracy) of ``c`` at ``threshold`` (answered: confidence >= threshold)."""
    for t, coverage, accuracy in c.coverage:
        if t >= threshold:
            return coverage, accuracy
    return None


def write_plot(result: EvalResult, path: Path) -> Path:
    """``plot.png``: hit@k and recall@k per config, and answered accuracy vs coverage.

    A configuration identical to an earlier one is drawn dotted on top of it and labelled
    "same as …"; the coverage panel marks each configuration at its own abstention
    threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if result.kind == "questions" else 1
    fig = Figure(figsize=(6.5 * panels, 5.4 if panels == 2 else 4.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    twins = same_as(result)

    def label(name: str) -> str:
        return f"{name} (same as {twins[name]})" if name in twins else name

    def style(name: str) -> dict[str, object]:
        return {"ls": ":", "lw": 2.4, "marker": "x", "ms": 6} if name in twins else {}

    ax = axes[0]
    for i, c in enumerate(result.configs):
        color, lw = f"C{i}", _width(i, len(result.configs))
        ks = list(range(1, len(c.curves["hit"]) + 1))
        twin = style(c.name)
        ax.plot(ks, c.curves["hit"], color=color, **{"lw": lw, "marker": "o", "ms": 3, **twin},
                label=f"{label(c.name)} hit@k")
        ax.plot(ks, c.curves["recall"], color=color, **{"lw": lw, "ls": "--", **twin},
                label=f"{label(c.name)} recall@k")
    ax.set_xlabel("k")
    ax.set_ylabel("mean over scored queries")
    ax.set_ylim(0, 1.02)
    ax.set_title("hit@k (solid) and recall@k (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if panels == 2:
        ax = axes[1]
        for i, c in enumerate(result.configs):
            if c.coverage:
                cov = [row[1] for row in c.coverage]
                acc = [row[2] for row in c.coverage]
                twin = style(c.name)
                ax.step(cov, acc, where="post", color=f"C{i}",
                        **{"lw": _width(i, len(result.configs)),
                           **{k: v for k, v in twin.items() if k in ("ls", "lw")}},
                        label=label(c.name))
                threshold = c.abstain_threshold
                point = _threshold_point(c, threshold) if threshold is not None else None
                if point is not None:
                    ax.plot([point[0]], [point[1]], marker="X", ms=10, color=f"C{i}",
                            markeredgecolor="black", ls="none",
                            label=f"{c.name} abstains below {threshold:g}")
        ax.set_xlabel("coverage (share of questions answered)")
        ax.set_ylabel("answered accuracy (hit@1)")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("accuracy vs coverage as the abstention threshold moves")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.text(0.5, 0.01, PLOT_GLOSSARY + "\n" + COVERAGE_CAPTION, ha="center",
                 va="bottom", fontsize=7.5)
        fig.tight_layout(rect=(0, 0.13, 1, 1))
    else:
        fig.text(0.5, 0.01, PLOT_GLOSSARY.split("\n")[0], ha="center", va="bottom",
                 fontsize=7)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, format="png")
    return Path(path)


def write_report(result: EvalResult, folder: Path) -> list[Path]:
    """Write ``report.md``, ``results.json`` and ``plot.png`` into ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / "report.md"
        md.write_text(markdown_report(result), encoding="utf-8")
        js = folder / "results.json"
        js.write_text(result_json(result) + "\n", encoding="utf-8")
        png = write_plot(result, folder / "plot.png")
    except OSError as exc:
        raise EvalError(f"Cannot write the report to {folder}: {exc.strerror or exc}.") from None
    return [md, js, png]
