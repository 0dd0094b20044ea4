"""Chunking and embedding on a Ray cluster: ``crampqa index --engine ray``.

Only the two heavy steps of a build leave this process (crampqa/indexing.py keeps
planning and writing): new and changed documents are chunked by Ray Data, a batch of
documents per task, and their texts embedded by ``map_batches`` with a callable class,
so each worker loads the model once and then streams batches. Vectors come back with
the row they fill, and the version is written here exactly as in a local build.

What travels is plain data (document texts, JSON-encoded chunk spans, row numbers and
float32 arrays in Arrow blocks). Ray ships the two worker functions by reference, so
every node needs crampqa and its model package installed (the same version).

Without ``--address`` a private head is started in this process with modest limits
(the CPUs asked for, a small object store) and stopped at the end; with one, the build
joins that cluster and only disconnects; a program already connected to Ray keeps its
connection. Ray is imported here only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crampqa.chunking import Chunk, chunk_text
from crampqa.config import ChunkSettings, EngineSettings, Progress
from crampqa.corpus import Document
from crampqa.embedding import Embedder
from crampqa.errors import CrampQAError, ModelError

#: Texts per embedding batch (one Arrow block each), as in a local build.
EMBED_BATCH = 256
#: Documents per chunking task.
CHUNK_BATCH = 64
#: Object store of a private local head, in bytes (Ray's minimum is 75 MB).
LOCAL_OBJECT_STORE = 256 * 1024 * 1024

INSTALL_HINT = "pip install 'crampqa[ray]'"


def require_ray() -> None:
    """Import Ray Data, or fail with one line that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - needs pyarrow and pandas too
    except ImportError as exc:
        raise CrampQAError(f"--engine ray needs Ray ({exc.name or 'ray'} is missing); "
                           f"install it with: {INSTALL_HINT}.") from None


def _chunk_to_json(chunk: Chunk) -> list[Any]:
    return [chunk.start, chunk.end, chunk.kind, chunk.heading, chunk.context,
            [list(s) for s in chunk.sentences]]


def _chunk_from_json(item: list[Any]) -> Chunk:
    start, end, kind, heading, context, sentences = item
    return Chunk(int(start), int(end), str(kind),
                 (int(heading[0]), int(heading[1])) if heading else None,
                 (int(context[0]), int(context[1])) if context else None,
                 tuple((int(a), int(b)) for a, b in sentences))


def chunk_batch(batch: dict[str, NDArray[Any]], chunk: dict[str, int]) -> dict[str, Any]:
    """A Ray Data task: each document's chunks, as one JSON string per document."""
    settings = ChunkSettings(**chunk)
    encoded = [json.dumps([_chunk_to_json(c) for c in chunk_text(str(text), settings)])
               for text in batch["text"]]
    return {"doc": batch["doc"], "chunks": np.array(encoded, dtype=object)}


class EmbedWorker:
    """A Ray Data worker: loads the model once, then embeds batch after batch, with the
    ONNX export of the weights (as a local build does; the node's export cache, or one
    export per node) on ``threads`` threads."""

    def __init__(self, model: str, weights_sha256: str | None, threads: int) -> None:
        from crampqa.embedding import OnnxBuildEmbedder, get_embedder
        from crampqa.encoder_cache import export_for

        inner = get_embedder(model)
        identity = inner.identity()
        found = identity.weights_sha256
        if weights_sha256 is not None and found != weights_sha256:
            raise ModelError(f"The model '{model}' on a Ray worker has other weights "
                             f"(sha256 {found[:12]}) than this machine's "
                             f"({weights_sha256[:12]}); install the same model package "
                             "on every node.")
        folder = export_for(inner, identity)
        self.embedder: Embedder = inner if folder is None else \
            OnnxBuildEmbedder(inner, folder, threads=threads)
        if folder is None:
            import torch

            torch.set_num_threads(threads)

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """The batch's vectors, with the rows they fill."""
        vectors = self.embedder.encode([str(t) for t in batch["text"]], batch_size=32)
        return {"row": batch["row"], "vector": vectors}


class RayRunner:
    """Chunks and embeds on the connected Ray cluster (see the module docstring)."""

    def __init__(self, engine: EngineSettings, model: str) -> None:
        self.engine = engine
        self.model = model

    def _workers(self, batches: int) -> int:
        import ray

        if self.engine.workers is not None:
            wanted = self.engine.workers
        else:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            wanted = max(1, cpus // self.engine.cpus_per_worker)
        return max(1, min(wanted, batches))

    def chunk(self, documents: list[Document], settings: ChunkSettings) -> list[list[Chunk]]:
        """The chunks of each document, in the order given, chunked on the cluster."""
        if not documents:
            return []
        import pyarrow as pa
        import ray.data

        blocks = [pa.table({"doc": np.arange(b, min(b + CHUNK_BATCH, len(documents))),
                            "text": [d.text for d in documents[b : b + CHUNK_BATCH]]})
                  for b in range(0, len(documents), CHUNK_BATCH)]
        ds = ray.data.from_arrow(blocks).map_batches(
            chunk_batch, fn_kwargs={"chunk": asdict(settings)}, batch_size=None,
            batch_format="numpy", num_cpus=1)
        out: list[list[Chunk] | None] = [None] * len(documents)
        with _ray_errors():
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for doc, encoded in zip(batch["doc"], batch["chunks"], strict=True):
                    out[int(doc)] = [_chunk_from_json(item)
                                     for item in json.loads(str(encoded))]
        missing = [i for i, chunks in enumerate(out) if chunks is None]
        if missing:  # would be a Ray Data bug; never write an index with holes
            raise CrampQAError(f"The Ray cluster returned no chunks for {len(missing)} "
                               "document(s); run the build again.")
        return [chunks or [] for chunks in out]

    def embed(self, embedder: Embedder, jobs: list[tuple[int, str]], out: NDArray[np.float32],
              stage: str, progress: Progress | None) -> None:
        """Fill ``out[row]`` for every job, embedding batches on the cluster's workers."""
        total = len(jobs)
        if progress:
            progress(stage, 0, total)
        if not jobs:
            return
        import pyarrow as pa
        import ray.data

        jobs = sorted(jobs, key=lambda job: len(job[1]), reverse=True)  # less padding
        blocks = [pa.table({"row": np.array([r for r, _ in jobs[b : b + EMBED_BATCH]],
                                            dtype=np.int64),
                            "text": [t for _, t in jobs[b : b + EMBED_BATCH]]})
                  for b in range(0, total, EMBED_BATCH)]
        identity = embedder.identity()
        if identity.name != self.model:
            raise ModelError(f"--engine ray embeds with the registered model '{self.model}', "
                             f"not '{identity.name}'.")
        cpus = self.engine.cpus_per_worker
        ds = ray.data.from_arrow(blocks).map_batches(
            EmbedWorker,
            fn_constructor_kwargs={"model": self.model,
                                   "weights_sha256": identity.weights_sha256,
                                   "threads": cpus},
            batch_size=EMBED_BATCH, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self._workers(len(blocks))),
            num_cpus=cpus)
        done = 0
        filled = np.zeros(len(out), dtype=bool)
        with _ray_errors():
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows = np.asarray(batch["row"], dtype=np.int64)
                out[rows] = np.asarray(batch["vector"], dtype=np.float32)
                filled[rows] = True
                done += len(rows)
                if progress:
                    progress(stage, min(done, total), total)
        if done != total or not filled[[row for row, _ in jobs]].all():
            raise CrampQAError(f"The Ray cluster returned {done} of {total} {stage} "
                               "vectors; run the build again.")


@contextmanager
def _ray_errors() -> Iterator[None]:
    """A failure on the cluster as one line: a crampqa error raised on a worker (such as
    other model weights) as itself, anything else as a :class:`CrampQAError`."""
    from ray.exceptions import RayError

    try:
        yield
    except RayError as exc:
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, CrampQAError):
                raise cause from None
            seen.add(id(cause))
            cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
        lines = [line for line in str(exc).splitlines() if line.strip()]
        detail = " ".join((lines[-1] if lines else type(exc).__name__).split())[:300]
        raise CrampQAError(f"The build failed on the Ray cluster: {detail}") from None


def _quiet() -> None:
    """No usage report, no Ray Data progress bars, plan logs or warnings: the build
    prints its own progress."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # the C++ parts' own logs
    # a busy machine can take longer than Ray's default to start a local head's agents
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def ray_runner(engine: EngineSettings, model: str) -> Iterator[RayRunner]:
    """Connect to (or start) Ray for one build; disconnect (or stop it) at the end,
    also on Ctrl-C or an error.

    A caller that is already connected to Ray (``ray.init`` in a Python API program)
    keeps its connection: the build runs on it, and neither ``address`` nor the
    worker count starts anything new.
    """
    require_ray()
    import ray

    _quiet()
    if ray.is_initialized():
        with _data_context():
            yield RayRunner(engine, model)
        return
    try:
        if engine.address is not None:
            ray.init(address=engine.address, log_to_driver=False,
                     logging_level=logging.ERROR)
        else:
            cpus = (engine.workers * engine.cpus_per_worker if engine.workers
                    else os.cpu_count() or 1)
            ray.init(address="local", num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE,
                     include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
    except Exception as exc:  # Ray raises bare Exceptions too (a head that timed out)
        ray.shutdown()
        detail = " ".join(str(exc).split())[:200]
        if engine.address:
            raise CrampQAError(f"Cannot reach the Ray cluster at {engine.address} ({detail}); "
                               "check --address and that `ray start --head` runs there.") \
                from None
        raise CrampQAError(f"Cannot start a local Ray head ({detail}); on a busy machine try "
                           "again, or start one with `ray start --head` and pass --address.") \
            from None
    try:
        with _data_context():
            yield RayRunner(engine, model)
    finally:
        ray.shutdown()


@contextmanager
def _data_context() -> Iterator[None]:
    """Ray Data without progress bars or plan logs for the build, restored afterwards."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
