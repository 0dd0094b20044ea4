"""Candidate generation on Milvus (``--backend milvus --uri URI``).

One entity per passage, keyed by its source ID (``doc_id#start-end``), holding the
passage's dense vector, its BM25 terms (the token stream crampqa's own tokenizer makes
of the text the embedded BM25 indexes, joined by spaces, which Milvus's BM25 function
turns into a sparse vector) and the fields a citation needs (document ID, offsets,
kind, heading and context offsets). Milvus answers the two candidate searches; fusion,
the answer scorer, abstention and presentation stay in crampqa.

The index folder stays the home of the document texts, passages, sentences and
vectors: every query process slices the verbatim answer from the same hashed version
it ranks with, and the collection is a copy that :func:`sync` brings up to date by
upserting and deleting source IDs (docs/scaling.md, "Searching on Milvus").

Same answers as the embedded backend: the dense index is exact (FLAT, inner product)
like FAISS's flat index, and BM25 uses bm25s's k1 and b over the same terms. Milvus
scores BM25 as ``idf · tf · (k1 + 1) / (tf + k1 · norm)`` and bm25s (its "lucene"
method) without the ``(k1 + 1)``, so scores are divided by it; some servers return them
negated, so their magnitude is read.

pymilvus is imported only here, and only when the Milvus backend is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crampqa.config import Progress, SearchSettings
from crampqa.errors import BackendError, IndexError_
from crampqa.lexical import BM25_B, BM25_K1, expand_query, tokenize
from crampqa.retrieval import LexicalHits
from crampqa.store import IndexData

#: What a user without the extra is told.
INSTALL_HINT = ("The Milvus backend needs the milvus extra: "
                "pip install 'crampqa[milvus]' (pymilvus, milvus-lite).")
#: The term of a passage without any (bm25s indexes such a passage as one "∅" token;
#: Milvus's standard analyzer keeps ``\\w+`` only, and crampqa's tokenizer never makes "_").
EMPTY_TERM = "_"
#: Tries to open a connection before giving up (one second apart).
CONNECT_ATTEMPTS = 3
#: Entities per upsert or delete call.
BATCH = 512
#: Longest value of a Milvus VARCHAR field, in bytes.
MAX_VARCHAR = 65_535
#: Integer fields, in the order of :attr:`crampqa.store.PassageTable.COLUMNS` after "doc".
INT_FIELDS = ("start", "end", "kind", "heading_start", "heading_end", "context_start",
              "context_end")


def _pymilvus() -> Any:
    """The pymilvus module, or a one-line error saying how to install it."""
    try:
        import pymilvus
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    logging.getLogger("pymilvus").setLevel(logging.ERROR)  # e.g. the iterator's notices
    return pymilvus


def _short(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split())[:200]


def connect(settings: SearchSettings) -> Any:
    """A ``MilvusClient`` for ``settings.uri`` (the same code a Milvus cluster uses)."""
    import time

    pymilvus = _pymilvus()
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return pymilvus.MilvusClient(uri=settings.uri, timeout=10)
        except Exception as exc:  # pymilvus raises its own MilvusException and gRPC errors
            if attempt == CONNECT_ATTEMPTS - 1:
                raise BackendError(f"Cannot reach Milvus at {settings.uri} ({_short(exc)}); "
                                   "start the server or check --uri.") from None
            time.sleep(1.0)  # e.g. a channel the server closed while idle: try a new one
    raise AssertionError("unreachable")  # pragma: no cover


def bm25_terms(text: str) -> str:
    """The BM25 terms of ``text`` as Milvus indexes them: crampqa's tokens, by spaces."""
    return " ".join(tokenize(text)) or EMPTY_TERM


def query_terms(question: str) -> str:
    """The BM25 terms of a question (lay synonyms added), as the embedded BM25 reads it."""
    return " ".join(tokenize(expand_query(question)))


def _filter_ids(ids: Sequence[str]) -> str:
    """A Milvus filter expression selecting these source IDs (JSON string escapes)."""
    return "source_id in [" + ", ".join(json.dumps(i) for i in ids) + "]"


def create_collection(client: Any, name: str, dim: int) -> None:
    """A collection for passages of ``dim``-dimensional vectors (exact dense index, BM25
    with bm25s's k1 and b)."""
    pymilvus = _pymilvus()
    dtype = pymilvus.DataType
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("source_id", dtype.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
    schema.add_field("doc_id", dtype.VARCHAR, max_length=MAX_VARCHAR)
    for name_ in INT_FIELDS:
        schema.add_field(name_, dtype.INT64)
    schema.add_field("terms", dtype.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                     analyzer_params={"tokenizer": "standard"})
    schema.add_field("sparse", dtype.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", dtype.FLOAT_VECTOR, dim=dim)
    schema.add_field("digest", dtype.VARCHAR, max_length=64)
    schema.add_function(pymilvus.Function(
        name="bm25", function_type=pymilvus.FunctionType.BM25,
        input_field_names=["terms"], output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="dense", index_type="FLAT", metric_type="IP")
    bm25 = {"bm25_k1": BM25_K1, "bm25_b": BM25_B}
    # pymilvus sends these as separate keys, which a Milvus server reads; milvus-lite
    # reads only a JSON "params" entry (without it, its default k1 of 1.5): send both
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                    params={**bm25, "params": bm25})
    client.create_collection(name, schema=schema, index_params=index)


def _check_schema(client: Any, settings: SearchSettings, dim: int) -> None:
    """Refuse a collection that is not crampqa's, or holds vectors of another size."""
    described = client.describe_collection(settings.collection)
    fields = {f["name"]: f for f in described.get("fields", [])}
    dense = fields.get("dense", {}).get("params", {}).get("dim")
    if not {"source_id", "terms", "sparse", "digest"} <= fields.keys() or dense is None:
        raise BackendError(f"The Milvus collection {settings.collection} at {settings.uri} "
                           "is not a crampqa collection; choose another --collection.")
    if int(dense) != dim:
        raise BackendError(f"The Milvus collection {settings.collection} holds "
                           f"{dense}-dimensional vectors and the index {dim}; choose another "
                           "--collection or drop that one.")


def entity(data: IndexData, row: int) -> dict[str, Any]:
    """The Milvus entity of passage ``row`` (the digest covers every other field)."""
    table = data.passages
    values = table.array[row]
    vector = np.asarray(data.embeddings[row], dtype=np.float32)
    record: dict[str, Any] = {
        "source_id": table.source_id(row),
        "doc_id": table.doc(row).doc_id,
        **{name: int(v) for name, v in zip(INT_FIELDS, values[1:], strict=True)},
        "terms": bm25_terms(table.bm25_text(row)),
    }
    if len(record["terms"].encode("utf-8")) > MAX_VARCHAR:
        raise BackendError(f"Passage {record['source_id']} has more BM25 terms than a Milvus "
                           f"field holds ({MAX_VARCHAR} bytes); use smaller chunks.")
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8"))
    digest.update(vector.tobytes())
    record["dense"] = vector.tolist()
    record["digest"] = digest.hexdigest()
    return record


@dataclass
class SyncSummary:
    """What :func:`sync` changed in the collection."""

    upserted: int = 0
    deleted: int = 0
    unchanged: int = 0
    created: bool = False
    seconds: float = 0.0


def _stored_digests(client: Any, name: str) -> dict[str, str]:
    """Source ID -> digest of every entity in the collection."""
    stored: dict[str, str] = {}
    iterator = client.query_iterator(name, batch_size=2000, filter="",
                                     output_fields=["source_id", "digest"])
    try:
        while batch := iterator.next():
            stored.update((e["source_id"], e["digest"]) for e in batch)
    finally:
        iterator.close()
    return stored


def sync(data: IndexData, settings: SearchSettings, progress: Progress | None = None
         ) -> SyncSummary:
    """Bring the collection in line with an index version: upsert the passages that are
    new or changed (by source ID and digest), delete the source IDs the version no longer
    has. The vectors are read from the index folder: nothing is embedded again."""
    import time

    started = time.perf_counter()
    client = connect(settings)
    summary = SyncSummary()
    name = settings.collection
    try:
        if not client.has_collection(name):
            create_collection(client, name, data.manifest.dim)
            summary.created = True
        _check_schema(client, settings, data.manifest.dim)
        client.load_collection(name)
        stored = _stored_digests(client, name)
        table = data.passages
        wanted: set[str] = set()
        batch: list[dict[str, Any]] = []
        for row in range(len(table)):
            record = entity(data, row)
            wanted.add(record["source_id"])
            if stored.get(record["source_id"]) == record["digest"]:
                summary.unchanged += 1
            else:
                batch.append(record)
            if len(batch) >= BATCH:
                client.upsert(name, batch)
                summary.upserted += len(batch)
                batch = []
            if progress and (row % BATCH == 0 or row == len(table) - 1):
                progress("milvus", row + 1, len(table))
        if batch:
            client.upsert(name, batch)
            summary.upserted += len(batch)
        gone = sorted(set(stored) - wanted)
        for start in range(0, len(gone), BATCH):
            client.delete(name, ids=gone[start:start + BATCH])
        summary.deleted = len(gone)
        if summary.upserted or summary.deleted:
            client.flush(name)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"Milvus at {settings.uri} failed while updating collection "
                           f"{name} ({_short(exc)}); the index folder is unchanged, run "
                           "`crampqa index` again.") from None
    finally:
        client.close()
    summary.seconds = time.perf_counter() - started
    return summary


class MilvusSource:
    """Candidates from a Milvus collection kept in step with an index version by
    :func:`sync`; rows are the version's passage rows (matched by source ID)."""

    name = "milvus"

    def __init__(self, data: IndexData, settings: SearchSettings) -> None:
        self.settings = settings
        self.collection = settings.collection
        self._client = connect(settings)
        table = self._table = data.passages
        self._rows = {table.source_id(row): row for row in range(len(table))}
        try:
            if not self._client.has_collection(self.collection):
                raise IndexError_(f"The Milvus collection {self.collection} at {settings.uri} "
                                  "does not exist; run `crampqa index --backend milvus --uri "
                                  f"{settings.uri}`.")
            _check_schema(self._client, settings, data.manifest.dim)
            self._client.load_collection(self.collection)
            count = self._count()
        except IndexError_:
            raise
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"Milvus at {settings.uri} failed ({_short(exc)}).") from None
        if count != len(table):
            raise IndexError_(f"The Milvus collection {self.collection} holds {count} passages "
                              f"and the index {len(table)}; run `crampqa index --backend milvus "
                              f"--uri {settings.uri}` to bring it up to date.")

    def _count(self) -> int:
        result = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def _search(self, data: list[Any], field: str, metric: str, k: int,
                expr: str = "") -> list[list[tuple[int, float]]]:
        """(row, distance) hits per query; source IDs the version lacks are skipped."""
        def search() -> Any:
            return self._client.search(
                self.collection, data=data, anns_field=field, limit=k, filter=expr,
                output_fields=["source_id"], search_params={"metric_type": metric})

        try:
            try:
                found = search()
            except Exception:  # once more on a new connection (e.g. closed while idle)
                self._client = connect(self.settings)
                found = search()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"Milvus at {self.settings.uri} failed to search "
                               f"({_short(exc)}).") from None
        out: list[list[tuple[int, float]]] = []
        for hits in found:
            rows = []
            for hit in hits:
                row = self._rows.get(str(hit.get("id", hit.get("source_id"))))
                if row is not None:
                    rows.append((row, float(hit["distance"])))
            out.append(rows)
        return out

    def dense_rows(self, vectors: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
        """One exact inner-product search for all the question's vectors."""
        if k <= 0:
            return [np.zeros(0, dtype=np.int64) for _ in vectors]
        hits = self._search([np.asarray(v, dtype=np.float32).tolist() for v in vectors],
                            "dense", "IP", k)
        return [np.asarray([row for row, _ in found], dtype=np.int64) for found in hits]

    def _bm25(self, terms: str, k: int, expr: str = "") -> dict[int, float]:
        found = self._search([terms], "sparse", "BM25", k, expr)[0]
        return {row: abs(distance) / (BM25_K1 + 1.0) for row, distance in found}

    def lexical_hits(self, question: str, k: int) -> LexicalHits:
        """Milvus's BM25 top ``k``; other rows are scored by a second search restricted
        to them, only when asked for."""
        terms = query_terms(question)
        top = self._bm25(terms, k) if terms and k > 0 else {}
        ordered = sorted(top.items(), key=lambda item: (-item[1], item[0]))
        rows = np.asarray([row for row, _ in ordered], dtype=np.int64)
        scores = np.asarray([score for _, score in ordered], dtype=np.float32)

        def score_rows(wanted: np.ndarray) -> np.ndarray:
            known = dict(top)
            missing = [int(r) for r in wanted if int(r) not in known]
            if terms and missing:
                ids = [self._table.source_id(r) for r in missing]
                known.update(self._bm25(terms, len(ids), _filter_ids(ids)))
            return np.asarray([known.get(int(r), 0.0) for r in wanted], dtype=np.float32)

        return LexicalHits(rows, scores, score_rows)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()
