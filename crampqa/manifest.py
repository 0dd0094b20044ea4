"""The index manifest, and the one rule that decides whether an index is up to date.

``manifest.json`` records what a version holds (format version, counts, per-file SHA-256)
and what it was built from (model identity, settings, corpus folder and document hashes).
:class:`Manifest` reads and writes it; :func:`freshness` compares it with what a build
would use now, for both :meth:`crampqa.CrampQA.open` and :func:`crampqa.indexing.build_index`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

from crampqa.config import IndexSettings, SearchSettings
from crampqa.corpus import CorpusState
from crampqa.embedding import Embedder, ModelIdentity
from crampqa.errors import REBUILD_HINT, CrampQAError, IndexError_
from crampqa.scorer import packaged_scorer_record

#: 2: ``manifest.json`` carries its own SHA-256 (:func:`seal`); 1: it did not.
FORMAT_VERSION = 2
#: The oldest format a build can upgrade in place (`crampqa index`), nothing re-embedded.
UPGRADABLE_FORMAT = 1
MANIFEST = "manifest.json"
#: The manifest's first entry: the SHA-256 of the rest of its text.
CHECKSUM_KEY = "manifest_sha256"
_SEAL = re.compile(rb'\{\n  "manifest_sha256": "([0-9a-f]{64})",\n')

#: Top-level manifest entries and the JSON type each must have.
MANIFEST_SCHEMA: dict[str, type] = {
    "model": dict, "settings": dict, "corpus": dict, "counts": dict, "files": dict,
}


def seal(data: dict[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` for ``data``: pretty JSON whose first entry,
    ``manifest_sha256``, is the SHA-256 of the rest of the text (the same JSON without
    that line), so a change to any byte of the file is seen on load."""
    body = json.dumps({k: v for k, v in data.items() if k != CHECKSUM_KEY}, indent=2,
                      ensure_ascii=False).encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()
    return b'{\n  "%s": "%s",\n' % (CHECKSUM_KEY.encode(), digest.encode()) + body[2:]


def seal_matches(raw: bytes) -> bool:
    """Whether ``raw`` (a manifest's bytes) starts with its checksum and the checksum is
    the SHA-256 of the rest."""
    match = _SEAL.match(raw)
    if match is None:
        return False
    body = b"{\n" + raw[match.end():]
    return hashlib.sha256(body).hexdigest() == match.group(1).decode("ascii")


@dataclass(frozen=True)
class CorpusRecord:
    """The corpus a version was built from: folder, file fingerprint, document hashes."""

    dir: str
    fingerprint: list[list[Any]]
    documents: dict[str, str]
    skipped: list[list[str]]
    #: the corpus's own note under every answer (``sources.json``); "" for the default
    note: str = ""

    @classmethod
    def of(cls, corpus: CorpusState) -> CorpusRecord:
        """The record of a corpus as it was read."""
        return cls(str(corpus.folder.resolve()), corpus.fingerprint, corpus.document_hashes(),
                   corpus.skipped(), corpus.report().note)


@dataclass(frozen=True)
class Manifest:
    """What an index version holds and what it was built from."""

    model: ModelIdentity
    dim: int
    settings: IndexSettings
    corpus: CorpusRecord
    passages: int
    documents: int
    dense: dict[str, Any] = field(default_factory=dict)  # type and parameters built
    #: the answer scorer crampqa shipped when the version was written: {"name", "sha256"}
    scorer: dict[str, str] = field(default_factory=dict)
    #: where candidates are searched (:class:`crampqa.config.SearchSettings`); empty: the
    #: index folder itself. Written by ``crampqa index --backend`` after the version is
    #: complete (:func:`crampqa.store.record_search`); not part of the contents.
    search: dict[str, str] = field(default_factory=dict)
    #: relative path -> {"sha256", "size"}; filled in when the version is committed
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the whole-document vectors and BM25 (crampqa.documents) when the version has them:
    #: {"version", "text", "files", "added"}; empty for a version built without them
    document_level: dict[str, Any] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    format_version: int = FORMAT_VERSION

    def with_files(self, files: dict[str, dict[str, Any]]) -> Manifest:
        """A copy listing ``files``."""
        return replace(self, files=files)

    @property
    def search_settings(self) -> SearchSettings:
        """Where this version's candidates are searched."""
        return SearchSettings.from_dict(self.search)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``manifest.json``."""
        search = {"search": self.search} if self.search else {}
        return {
            "format_version": self.format_version,
            "created": self.created,
            "model": {"name": self.model.name, "weights_sha256": self.model.weights_sha256,
                      "weights_stat": list(self.model.weights_stat)
                      if self.model.weights_stat is not None else None,
                      "dim": self.dim},
            "settings": self.settings.to_dict(),
            # written for readers of format 1 that decide freshness by it; not read here
            "content_key": {"model": self.model.name,
                            "chunk": self.settings.to_dict()["chunk"],
                            "weights_sha256": self.model.weights_sha256},
            "corpus": {"dir": self.corpus.dir, "fingerprint": self.corpus.fingerprint,
                       "documents": self.corpus.documents, "skipped": self.corpus.skipped,
                       **({"note": self.corpus.note} if self.corpus.note else {})},
            "counts": {"documents": self.documents, "passages": self.passages},
            "dense": self.dense,
            "scorer": self.scorer,
            **search,
            "document_level": self.document_level,
            "files": self.files,
        }

    def dump(self, folder: Path) -> None:
        """Write ``manifest.json`` into ``folder``."""
        self.dump_to(folder / MANIFEST)

    def dump_to(self, path: Path) -> None:
        """Write the manifest's JSON to ``path``, sealed with its checksum (:func:`seal`)."""
        path.write_bytes(seal(self.to_json()))

    def shown(self) -> str:
        """Pretty JSON without the file list and fingerprint (for ``crampqa info``)."""
        shown = {k: v for k, v in self.to_json().items() if k != "files"}
        shown["corpus"] = {k: v for k, v in shown["corpus"].items() if k != "fingerprint"}
        return json.dumps(shown, indent=2, ensure_ascii=False)

    @classmethod
    def load(cls, folder: Path, *, upgrading: bool = False) -> Manifest:
        """The manifest of a version folder, checked for its checksum, format version and
        shape. A manifest of the previous format (without a checksum) is refused with
        the way to upgrade it, unless ``upgrading`` (a build, which then seals it)."""
        path = folder / MANIFEST
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise IndexError_(f"The index in {folder} has no manifest; {REBUILD_HINT}.") \
                from None
        except PermissionError as exc:
            raise IndexError_(f"Cannot read {path}: {exc.strerror}; check the folder's "
                              "permissions.") from None
        except (OSError, ValueError):
            raise IndexError_(f"The index manifest {path} is damaged; {REBUILD_HINT}.") \
                from None
        if not isinstance(data, dict) or "format_version" not in data:
            raise IndexError_(f"The index manifest {path} is damaged; {REBUILD_HINT}.")
        version = data["format_version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise IndexError_(f"The index manifest {path} is damaged (format_version is "
                              f"{json.dumps(version)[:40]}, not a whole number); "
                              f"{REBUILD_HINT}.")
        if version > FORMAT_VERSION:
            raise IndexError_(
                f"The index in {folder} was written by a newer crampqa (format {version}, "
                f"this one reads {FORMAT_VERSION}); upgrade crampqa or {REBUILD_HINT}."
            )
        if version < UPGRADABLE_FORMAT:
            raise IndexError_(f"The index in {folder} uses old format {version}; "
                              f"{REBUILD_HINT}.")
        if version < FORMAT_VERSION and not upgrading:
            raise IndexError_(
                f"The index in {folder} was written by an older crampqa (format {version}, "
                f"without a checksum of its manifest); run `crampqa index` to upgrade it "
                "(nothing is embedded again)."
            )
        if version == FORMAT_VERSION and not seal_matches(raw):
            raise IndexError_(f"The index manifest {path} is damaged (it does not match its "
                              f"checksum); {REBUILD_HINT}.")
        bad = [key for key, kind in MANIFEST_SCHEMA.items()
               if not isinstance(data.get(key), kind)]
        try:
            if bad:
                raise ValueError(bad)
            return cls._from_json(data)
        except (CrampQAError, KeyError, TypeError, ValueError):
            raise IndexError_(f"The index manifest {path} is damaged "
                              f"({', '.join(bad) or 'model'} missing or malformed); "
                              f"{REBUILD_HINT}.") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Manifest:
        model, corpus, counts = data["model"], data["corpus"], data["counts"]
        stat = model.get("weights_stat")
        if not isinstance(model.get("name"), str) or not isinstance(corpus.get("documents"),
                                                                    dict) \
                or not all(isinstance(data["settings"].get(part, {}), dict)
                           for part in ("chunk", "retrieval")):
            raise ValueError("model")
        return cls(
            model=ModelIdentity(model["name"], str(model.get("weights_sha256", "")),
                                (int(stat[0]), int(stat[1])) if stat else None),
            dim=int(model.get("dim", 0)),
            settings=IndexSettings.from_dict(data["settings"]),
            corpus=CorpusRecord(str(corpus.get("dir", "")), corpus.get("fingerprint") or [],
                                corpus["documents"], corpus.get("skipped") or [],
                                str(corpus.get("note") or "")),
            passages=counts.get("passages", -1),
            documents=counts.get("documents", -1),
            dense=dict(data.get("dense") or {}),
            scorer={str(k): str(v) for k, v in (data.get("scorer") or {}).items()},
            search=_search_entry(data.get("search")),
            files=data["files"],
            document_level=dict(data.get("document_level") or {}),
            created=str(data.get("created", "")),
            format_version=data["format_version"],
        )


def _search_entry(raw: object) -> dict[str, str]:
    """The manifest's ``search`` entry, checked (a bad one is a damaged manifest)."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("search")
    entry = {str(k): str(v) for k, v in raw.items()}
    SearchSettings.from_dict(entry)  # raises InputError (a CrampQAError) when malformed
    return entry


class Action(IntEnum):
    """What bringing an index up to date takes, from least to most work."""

    UP_TO_DATE = 0
    #: the contents would be the same but the records differ (query settings, corpus
    #: files touched, skipped files): a build writes a new version reusing everything
    RECORD = 1
    #: documents were added, changed or removed: only those are chunked and embedded
    INCREMENTAL = 2
    #: the model or the chunker changed (or there is no usable index): embed everything
    FULL = 3


@dataclass(frozen=True)
class Freshness:
    """The verdict of :func:`freshness`, with the reason shown to the user."""

    action: Action
    reason: str | None = None

    @property
    def needs_build(self) -> bool:
        """Whether the contents are stale, so that asking should rebuild first."""
        return self.action >= Action.INCREMENTAL


@dataclass
class IndexInputs:
    """What a build would use now: settings, embedder and (when known) the corpus."""

    settings: IndexSettings
    embedder: Embedder
    corpus: CorpusState | None = None
    scorer: dict[str, str] = field(default_factory=packaged_scorer_record)

    def identity(self, manifest: Manifest | None) -> ModelIdentity:
        """The embedder's identity (reusing the recorded weights hash where it holds)."""
        return self.embedder.identity(manifest.model if manifest is not None else None)


def freshness(manifest: Manifest | None, inputs: IndexInputs) -> Freshness:
    """Whether the index ``manifest`` describes matches ``inputs``, and if not, why."""
    if manifest is None:
        return Freshness(Action.FULL, "no index yet")
    old, new = manifest.model, inputs.identity(manifest)
    if old.name != new.name:
        return Freshness(Action.FULL, f"the model changed ({old.name} -> {new.name})")
    if old.weights_sha256 != new.weights_sha256:
        return Freshness(Action.FULL, "the model weights changed")
    if manifest.settings.chunk != inputs.settings.chunk:
        return Freshness(Action.FULL, "the chunker settings changed")
    corpus, record = inputs.corpus, manifest.corpus
    if corpus is not None and (corpus.is_read or corpus.fingerprint != record.fingerprint) \
            and corpus.document_hashes() != record.documents:
        return Freshness(Action.INCREMENTAL, "the corpus changed")
    if corpus is not None and (corpus.is_read or corpus.fingerprint != record.fingerprint) \
            and corpus.report().note != record.note:
        return Freshness(Action.INCREMENTAL, "the corpus's note changed")  # nothing embedded
    if manifest.settings != inputs.settings or old.weights_stat != new.weights_stat:
        return Freshness(Action.RECORD, "the settings or the model file changed")
    if manifest.scorer != inputs.scorer:
        return Freshness(Action.RECORD, "the answer scorer changed")
    if corpus is not None and (record.dir != str(corpus.folder.resolve())
                               or record.fingerprint != corpus.fingerprint
                               or (corpus.is_read and record.skipped != corpus.skipped())):
        return Freshness(Action.RECORD, "the corpus files changed")
    return Freshness(Action.UP_TO_DATE)
