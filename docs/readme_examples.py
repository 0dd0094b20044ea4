"""Regenerate the README's example outputs from the real tool, or check that they still match.

    python docs/readme_examples.py            # rewrite README.md's generated blocks
    python docs/readme_examples.py --check    # exit 1 and name the blocks that drifted

A generated block is a fenced code block right after a line

    <!-- output of: crampqa ARGS -->

Its content is what ``crampqa ARGS`` prints at an 80-column terminal without colour (for
``--json``, the JSON alone; otherwise the command line, then the output). The commands run
in this process through the CLI's own entry point, on the default corpus and index unless
``--index`` is given (``tests/test_readme_examples.py`` runs the check on the test session's
index of the same corpus).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- output of: crampqa (?P<args>.+?) -->\n```(?P<lang>\w*)\n"
                    r"(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
WIDTH = 80


@dataclass(frozen=True)
class Example:
    """One generated block of the README: its command and its text as found."""

    args: str
    lang: str
    body: str
    start: int
    end: int


def examples(readme: str) -> list[Example]:
    """The generated blocks of ``readme``, in order."""
    return [Example(m["args"], m["lang"], m["body"], m.start("body"), m.end("body"))
            for m in MARKER.finditer(readme)]


@contextlib.contextmanager
def _environment(index: Path | None, corpus: Path | None) -> Iterator[None]:
    names = {"CRAMPQA_INDEX": index, "CRAMPQA_CORPUS": corpus, "NO_COLOR": "1"}
    saved = {name: os.environ.get(name) for name in names}
    for name, value in names.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def run(args: str, index: Path | None = None, corpus: Path | None = None) -> str:
    """What ``crampqa ARGS`` prints on stdout at an 80-column terminal, without colour."""
    from rich.console import Console

    from crampqa import cli

    console = Console(force_terminal=True, width=WIDTH, color_system=None, record=True,
                      file=io.StringIO(), soft_wrap=False)
    saved, cli.out = cli.out, console
    stdout = io.StringIO()
    try:
        with _environment(index, corpus), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(io.StringIO()):
            try:
                cli.main(shlex.split(args))
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise RuntimeError(f"crampqa {args} exited with {exc.code}") from None
    finally:
        cli.out = saved
    text = stdout.getvalue() + console.export_text(styles=False)
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines()) + "\n"


def expected(example: Example, index: Path | None = None, corpus: Path | None = None) -> str:
    """The block's content as the tool prints it today."""
    output = run(example.args, index, corpus)
    return output if example.lang == "json" else f"$ crampqa {example.args}\n{output}"


def drifted(readme: str, index: Path | None = None,
            corpus: Path | None = None) -> list[tuple[Example, str]]:
    """Each block whose content differs from today's output, with that output."""
    return [(ex, now) for ex in examples(readme)
            if (now := expected(ex, index, corpus)) != ex.body]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    if not examples(readme):
        print("no generated blocks found in README.md", file=sys.stderr)
        return 1
    changes = drifted(readme, args.index, args.corpus)
    if args.check:
        for ex, _ in changes:
            print(f"README.md: the output of `crampqa {ex.args}` has changed", file=sys.stderr)
        return 1 if changes else 0
    for ex, now in sorted(changes, key=lambda change: -change[0].start):
        readme = readme[:ex.start] + now + readme[ex.end:]
    README.write_text(readme, encoding="utf-8")
    print(f"README.md: {len(changes)} of {len(examples(readme))} generated blocks rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
