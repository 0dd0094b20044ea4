"""Opening an index (issue #15): a damaged ``CURRENT`` pointer and a ``format_version``
that is not a whole number give clear errors, and ``crampqa index`` repairs both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crampqa.store import CURRENT_FILE, MANIFEST, current_version, load_version
from tests.conftest import run_main

QUESTION = "why do my calves cramp at night"
REBUILD = "run `crampqa index --rebuild`"


pytestmark = pytest.mark.usefixtures("fake_default_model")


@pytest.fixture
def index(base: tuple[Path, Path], tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(base[1], target, symlinks=True)
    return target


def error_line(code: int, out: str, err: str, expected: int) -> str:
    assert code == expected, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crampqa: error: "), lines
    return lines[0].removeprefix("crampqa: error: ")


def assert_repaired(index: Path, corpus: Path) -> None:
    code, _, err = run_main("index", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert err.splitlines()[0].startswith("Full rebuild: the previous index is unusable (")
    folder = current_version(index)
    assert folder is not None
    load_version(folder, verify_full=True)
    code, out, err = run_main("ask", QUESTION, "--json", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert json.loads(out)["passages"]


@pytest.mark.parametrize("data", [bytes(range(256)), b"\xff\xfe\x00garbage", b"v-1\x1b[2J\n",
                                  b"v" * 10_000], ids=["all-bytes", "utf16ish", "escape",
                                                       "long"])
def test_random_bytes_in_current_are_damage_that_index_repairs(
        data: bytes, index: Path, base: tuple[Path, Path]) -> None:
    pointer = index / CURRENT_FILE
    pointer.write_bytes(data)
    message = error_line(*run_main("ask", QUESTION, "--index", index), expected=4)
    assert message == f"{pointer} is damaged; {REBUILD}."
    assert_repaired(index, base[0])


@pytest.mark.parametrize("stored", ["1", None, True, 1.0, [1], {"v": 1}], ids=repr)
def test_format_version_that_is_not_a_whole_number(
        stored: object, index: Path, base: tuple[Path, Path]) -> None:
    folder = current_version(index)
    assert folder is not None
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format_version"] = stored
    (folder / MANIFEST).write_text(json.dumps(manifest))
    code, out, err = run_main("ask", QUESTION, "--json", "--index", index)
    message = error_line(code, out, err, expected=4)
    assert json.loads(out) == {"error": "index_error", "message": message}
    assert message == (f"The index manifest {folder / MANIFEST} is damaged (format_version is "
                       f"{json.dumps(stored)}, not a whole number); {REBUILD}.")
    assert "newer crampqa" not in message
    assert_repaired(index, base[0])
