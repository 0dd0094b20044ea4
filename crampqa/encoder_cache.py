"""Reusing the ONNX export of the embedding model instead of exporting it on every build.

Exporting all-MiniLM-L6-v2 to ONNX (torch, about 7-10 s) gives the same graph for the
same weights, so a build copies an earlier export of those weights when there is one:
from the previous version, from the index's current version, or from the export cache,
``<user cache>/encoders/<weights hash>/`` (``$CRAMPQA_ENCODER_CACHE`` sets the folder;
``off`` turns the cache off). A cached export carries ``export.json`` with the
weights hash and the SHA-256 of each file, checked before every copy; a damaged or
foreign entry is ignored and replaced by a fresh export.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from crampqa.corpus import sha256_file
from crampqa.embedding import ModelIdentity
from crampqa.manifest import Manifest
from crampqa.onnx_encoder import MODEL_FILE

#: Environment variable naming the export cache folder (``off``: no cache).
CACHE_ENV = "CRAMPQA_ENCODER_CACHE"
RECORD = "export.json"
ENCODER_DIR = "encoder"


def cache_root() -> Path | None:
    """The export cache folder, or None when it is turned off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in {"", "off", "0", "no"} else Path(env)
    from crampqa.config import cache_dir

    return cache_dir() / "encoders"


def reusable_export(index_root: Path, identity: ModelIdentity,
                    previous: Path | None) -> Path | None:
    """The encoder folder of ``previous`` (a version the build continues, already checked
    to have the same weights) or of the index's current version when its manifest
    records the same model weights; None when neither has one."""
    if previous is not None and (previous / ENCODER_DIR / MODEL_FILE).is_file():
        return previous / ENCODER_DIR
    from crampqa.errors import IndexError_
    from crampqa.store import current_version

    try:
        folder = current_version(index_root)
        if folder is None or not (folder / ENCODER_DIR / MODEL_FILE).is_file():
            return None
        manifest = Manifest.load(folder)
    except (IndexError_, OSError, ValueError):
        return None
    if not manifest.model.same_model(identity):
        return None
    files = manifest.files
    encoder = folder / ENCODER_DIR
    for path in sorted(encoder.iterdir()):  # the manifest's checksums must still hold
        entry = files.get(f"{ENCODER_DIR}/{path.name}")
        if not isinstance(entry, dict) or sha256_file(path) != entry.get("sha256"):
            return None
    return encoder


def _entry(identity: ModelIdentity) -> Path | None:
    root = cache_root()
    return root / identity.weights_sha256[:32] if root is not None else None


def cached_export(identity: ModelIdentity) -> Path | None:
    """The cached export of these weights, when present and intact."""
    folder = _entry(identity)
    if folder is None:
        return None
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        if record.get("weights_sha256") != identity.weights_sha256:
            return None
        files: dict[str, str] = record["files"]
        if MODEL_FILE not in files:
            return None
        for name, digest in files.items():
            if sha256_file(folder / name) != digest:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return folder


def store_export(source: Path, identity: ModelIdentity) -> None:
    """Copy a fresh export into the cache (best effort: a failure only costs a later
    export). The entry appears whole or not at all (written aside, then renamed)."""
    folder = _entry(identity)
    if folder is None:
        return
    tmp: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        files: dict[str, str] = {}
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
                files[path.name] = sha256_file(tmp / path.name)
        (tmp / RECORD).write_text(json.dumps(
            {"weights_sha256": identity.weights_sha256, "model": identity.name,
             "files": files}, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # damaged: replaced
        os.replace(tmp, folder)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def export_for(embedder: object, identity: ModelIdentity) -> Path | None:
    """An ONNX export of ``embedder``'s weights on this machine, for a build worker: the
    cached one, else a fresh export stored in the cache (or, with the cache off, in a
    temporary folder that lives as long as the process). None when ``embedder`` is not
    the sentence-transformers model (nothing to export)."""
    from crampqa.embedding import SentenceTransformerEmbedder

    if not isinstance(embedder, SentenceTransformerEmbedder):
        return None
    found = cached_export(identity)
    if found is not None:
        return found
    folder = Path(tempfile.mkdtemp(prefix="crampqa-export-")) / ENCODER_DIR
    embedder.export(folder)
    store_export(folder, identity)
    return cached_export(identity) or folder
