"""Are two index versions the same? Tables byte for byte, vectors by largest difference.

Run from the repository root::

    .venv/bin/python benchmarks/compare_indexes.py /tmp/medquad-ray indexes/beir-medquad

Each argument is an index folder (its current version is read) or a version folder. Prints
one JSON object: for ``passages.npy``, ``sentences.npy`` and ``documents.jsonl`` whether
they are byte-identical; for every vector array both have, its shape and the largest
absolute difference; and which manifest entries differ. Used to check that a Ray build
gives the local build's index (docs/scaling.md, "Building on Ray").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

TABLES = ("passages.npy", "sentences.npy", "documents.jsonl")
VECTORS = ("embeddings.npy", "sentence_embeddings.npy", "doc_embeddings.npy",
           "title_embeddings.npy")


def version(folder: Path) -> Path:
    """The current version of an index folder, or the folder itself if it is a version."""
    current = folder / "CURRENT"
    return folder / current.read_text(encoding="utf-8").strip() if current.exists() else folder


def compare(one: Path, two: Path) -> dict[str, Any]:
    """The comparison of two version folders (see the module docstring)."""
    report: dict[str, Any] = {"identical": {}, "vectors": {}}
    for name in TABLES:
        report["identical"][name] = (one / name).read_bytes() == (two / name).read_bytes()
    for name in VECTORS:
        if not ((one / name).exists() and (two / name).exists()):
            continue
        a = np.load(one / name, allow_pickle=False)
        b = np.load(two / name, allow_pickle=False)
        report["vectors"][name] = {
            "shape": list(a.shape),
            "max_abs_diff": float(np.abs(a - b).max()) if a.shape == b.shape else None,
        }
    first = json.loads((one / "manifest.json").read_text(encoding="utf-8"))
    second = json.loads((two / "manifest.json").read_text(encoding="utf-8"))
    report["manifest_entries_differing"] = sorted(
        key for key in first.keys() | second.keys() if first.get(key) != second.get(key))
    return report


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: compare_indexes.py INDEX_OR_VERSION INDEX_OR_VERSION")
    one, two = (version(Path(arg)) for arg in sys.argv[1:])
    print(json.dumps(compare(one, two), indent=1))


if __name__ == "__main__":
    main()
