"""The dense side: a small FAISS wrapper (exact inner product, or HNSW when large).

Figures behind the constants below: docs/performance.md, "Scale: search stage at 1M
vectors" (benchmarks/bench_ann.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.config import AnnKind
from crampqa.errors import REBUILD_HINT, IndexError_

#: Above this many passages, "auto" picks the approximate index. One exact search per
#: question took (p50, one thread, 2-core machine) 2.1 ms at 25k vectors, 5.2 ms at 50k,
#: 9.5 ms at 100k, 17 ms at 200k and 67 ms at 1M: past about 50k it no longer fits the
#: ~5 ms a warm question can give the dense search (docs/performance.md, "Scale").
HNSW_THRESHOLD = 50_000
#: The approximate index type "auto" picks (``crampqa index --ann hnsw``).
APPROX_KIND = AnnKind.HNSW
#: HNSW graph degree, build beam width and search beam width (efSearch is stored in the
#: index file; a search explores max(efSearch, k) candidates). Measured recall@10 against
#: exact search: 0.994 on the real MedQuAD passages with real questions, 0.986-0.992 on
#: 1M synthetic vectors, at about 1 ms per question; efConstruction 80 (the first choice)
#: stayed below 0.99 on real data even with efSearch 512.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 160
HNSW_EF_SEARCH = 256
#: OpenMP threads for one question's search. A single query is too little work to share:
#: FAISS's default (one per core) made one flat search 1.5-2.2x slower on the 2-core
#: machine when quiet and 2-10x slower when busy (docs/performance.md). Builds keep
#: FAISS's default.
SEARCH_THREADS = 1



@contextlib.contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` FAISS OpenMP threads (this thread only), then restore."""
    import faiss

    before = faiss.omp_get_max_threads()
    if before == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def resolve_kind(kind: AnnKind | str, size: int) -> AnnKind:
    """The concrete index type for ``kind`` ("auto" decides by ``size``)."""
    kind = AnnKind.parse(kind)
    if kind is AnnKind.AUTO:
        return APPROX_KIND if size > HNSW_THRESHOLD else AnnKind.FLAT
    return kind


class DenseIndex:
    """Inner-product search over unit vectors (= cosine similarity)."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, kind: AnnKind | str = AnnKind.FLAT) -> DenseIndex:
        """A flat (exact) or HNSW index over ``vectors``."""
        import faiss

        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 384
        kind = resolve_kind(kind, len(vectors))
        index: Any
        if kind is AnnKind.HNSW:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    def save(self, path: Path) -> None:
        """Write with faiss.write_index (FAISS's own format, not pickle)."""
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        """Read a saved index; a damaged file becomes a clear IndexError_."""
        import faiss

        try:
            return cls(faiss.read_index(str(path)))
        except RuntimeError:
            raise IndexError_(
                f"The FAISS index {path} is damaged; {REBUILD_HINT}."
            ) from None

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """"flat" or "hnsw" (read from the FAISS index itself)."""
        import faiss

        return "hnsw" if isinstance(self._index, faiss.IndexHNSW) else "flat"

    def describe(self) -> dict[str, Any]:
        """Type and parameters of the index, for a manifest or a report."""
        info: dict[str, Any] = {"type": self.kind, "size": self.size}
        if self.kind == "hnsw":
            hnsw = self._index.hnsw
            info.update(M=int(hnsw.nb_neighbors(1)), efConstruction=int(hnsw.efConstruction),
                        efSearch=int(hnsw.efSearch))
        return info

    def set_search_param(self, value: int) -> None:
        """Set the approximate index's search width (HNSW efSearch); no-op for flat."""
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = int(value)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (rows, scores) for one query vector; rows of -1 are dropped."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        with omp_threads(SEARCH_THREADS):
            scores, rows = self._index.search(
                np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k
            )
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep]
