"""Build hook: ship the corpus articles inside the package, copied byte for byte.

``corpus/`` stays the one copy in the source tree; building a wheel (``pip install .``,
``pipx install .``) copies its files into ``crampqa/data/corpus/`` of the build. Everything
else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithCorpus(build_py):
    """``build_py`` that also copies ``corpus/*`` into ``crampqa/data/corpus/``."""

    def run(self) -> None:
        super().run()
        source = ROOT / "corpus"
        if not source.is_dir():  # building from an sdist that already carries the copy
            return
        target = Path(self.build_lib) / "crampqa" / "data" / "corpus"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                shutil.copyfile(path, target / path.name)  # bytes only, no metadata


setup(cmdclass={"build_py": BuildWithCorpus})
