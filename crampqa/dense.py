"""The dense side: a small FAISS wrapper (exact inner product, or HNSW when large)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crampqa.errors import IndexError_

#: Above this many passages, "auto" picks HNSW (see docs/performance.md).
HNSW_THRESHOLD = 200_000


class DenseIndex:
    """Inner-product search over unit vectors (= cosine similarity)."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat") -> DenseIndex:
        """A flat (exact) or HNSW index over ``vectors``."""
        import faiss

        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 384
        if kind == "auto":
            kind = "hnsw" if len(vectors) > HNSW_THRESHOLD else "flat"
        index: Any
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        elif kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            raise IndexError_(f"Unknown index type '{kind}' (choose flat, hnsw or auto).")
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
                f"The FAISS index {path} is damaged; run `crampqa index --rebuild`."
            ) from None

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (rows, scores) for one query vector; rows of -1 are dropped."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, rows = self._index.search(
            np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k
        )
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep]
