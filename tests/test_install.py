"""Installing crampqa as a tool (`pipx install .`): a wheel that works outside the checkout.

The wheel is built from a copy of the tracked files and installed into a fresh virtual
environment in a temporary folder; its dependencies come from this environment (a path
file), so nothing is downloaded. The question is answered from the articles shipped in the
package and an index in the user's cache folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crampqa.config import PROJECT_ROOT
from tests.conftest import CORPUS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built (no build isolation, no network) from a copy of the source files
    (tracked or not ignored)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        path = PROJECT_ROOT / name
        if path.is_file() and name.split("/")[0] in (
                "crampqa", "corpus", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, source / name)
    out = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(out), str(source)], check=True,
                   capture_output=True, timeout=300)
    (found,) = out.glob("crampqa-*.whl")
    return found


def test_wheel_ships_the_articles_byte_for_byte(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name: archive.read(n) for n in archive.namelist()
                   if n.startswith("crampqa/data/corpus/") and not n.endswith("/")}
    expected = {p.name: p.read_bytes() for p in CORPUS.iterdir() if p.is_file()}
    assert len(expected) == 6 and shipped == expected


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment outside the checkout with the wheel installed."""
    env_dir = tmp_path_factory.mktemp("tool") / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # dependencies from this environment (its editable crampqa is not seen: a plain path
    # entry does not run that environment's own .pth files)
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    yield env_dir


def _run(env_dir: Path, cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRAMPQA_", "PYTHON"))}
    env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run([str(env_dir / "bin" / "crampqa"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_installed_tool_answers_outside_the_checkout(installed: Path, real_index: Path,
                                                     tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import crampqa, crampqa.config as c; print(crampqa.__file__); "
                            "print(c.in_checkout()); print(c.default_corpus_dir())"],
                           cwd=elsewhere, capture_output=True, text=True, check=True)
    module, checkout, corpus = where.stdout.split("\n")[:3]
    assert module.startswith(str(installed)) and checkout == "False"
    assert corpus.startswith(str(installed)) and corpus.endswith("crampqa/data/corpus")
    # the session's index (built over the same bytes) stands in for the first build
    shutil.copytree(real_index, cache / "crampqa" / "indexes" / "default")
    run = _run(installed, elsewhere, cache, "why", "do", "my", "calves", "cramp", "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["passages"] and not answer["abstained"]
    shipped = Path(corpus)
    for p in answer["passages"]:
        text = (shipped / f"{p['doc_id']}.txt").read_text(encoding="utf-8")
        assert p["text"] == text[p["start"]:p["end"]]
    assert "Full rebuild" not in run.stderr and "Indexed" not in run.stderr
    assert not list(elsewhere.iterdir())  # nothing written where it was run
    info = _run(installed, elsewhere, cache, "info", "--summary")
    assert str(cache / "crampqa" / "indexes" / "default") in info.stdout
