"""``manifest.json`` carries its own SHA-256, checked whenever a version is opened and by
``crampqa info --verify``; an index of the previous format (no such checksum) is refused
with the way to upgrade it, and ``crampqa index`` upgrades it without embedding again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crampqa.errors import IndexError_
from crampqa.manifest import CHECKSUM_KEY, FORMAT_VERSION, Manifest, seal, seal_matches
from crampqa.store import MANIFEST
from tests.conftest import FakeDefaultEmbedder
from tests.support import QUESTION, REBUILD, cli, version

pytestmark = pytest.mark.usefixtures("fake_default_model")


def test_a_written_manifest_is_sealed(index: Path) -> None:
    raw = (version(index) / MANIFEST).read_bytes()
    assert raw.startswith(b'{\n  "manifest_sha256": "') and seal_matches(raw)
    data = json.loads(raw)
    assert data["format_version"] == FORMAT_VERSION
    assert seal(data) == raw  # sealing is deterministic


def test_a_same_size_edit_is_refused_by_ask_and_verify(index: Path, corpus: Path) -> None:
    path = version(index) / MANIFEST
    raw = path.read_bytes()
    edited = raw.replace(b'"scorer_threshold": 0.', b'"scorer_threshold": 9.', 1)
    assert edited != raw and len(edited) == len(raw)
    path.write_bytes(edited)
    expected = f"The index manifest {path} is damaged (it does not match its checksum); " \
               f"{REBUILD}."
    assert cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(4) == expected
    run = cli("info", "--verify", "--index", index, "--corpus", corpus)
    assert run.error(4) == expected and "OK" not in run.out + run.err


def test_every_one_byte_flip_is_noticed(index: Path) -> None:
    folder = version(index)
    path = folder / MANIFEST
    raw = path.read_bytes()
    Manifest.load(folder)
    step = max(1, len(raw) // 60)
    for position in range(0, len(raw), step):
        for mask in (0x01, 0x20):
            flipped = bytearray(raw)
            flipped[position] ^= mask
            path.write_bytes(bytes(flipped))
            with pytest.raises(IndexError_):
                Manifest.load(folder)
    path.write_bytes(raw)
    Manifest.load(folder)


def as_previous_format(folder: Path) -> None:
    """Rewrite a version's manifest as the previous format wrote it (no checksum)."""
    data = json.loads((folder / MANIFEST).read_bytes())
    del data[CHECKSUM_KEY]
    data["format_version"] = FORMAT_VERSION - 1
    (folder / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")


def test_an_index_of_the_previous_format_is_upgraded_by_index(index: Path,
                                                               corpus: Path) -> None:
    folder = version(index)
    as_previous_format(folder)
    message = cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(4)
    assert message == (f"The index in {folder} was written by an older crampqa (format "
                       f"{FORMAT_VERSION - 1}, without a checksum of its manifest); run "
                       "`crampqa index` to upgrade it (nothing is embedded again).")
    FakeDefaultEmbedder.seen = []
    run = cli("index", "--index", index, "--corpus", corpus)
    assert run.code == 0, run.err
    assert "manifest was upgraded to carry its own checksum" in run.err
    assert FakeDefaultEmbedder.seen == []  # nothing embedded
    assert version(index) == folder  # the same version, sealed in place
    assert seal_matches((folder / MANIFEST).read_bytes())
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


def test_a_damaged_index_of_the_previous_format_is_rebuilt_not_sealed(
        index: Path, corpus: Path) -> None:
    folder = version(index)
    as_previous_format(folder)
    data = bytearray((folder / "passages.npy").read_bytes())
    data[-1] ^= 0xFF
    (folder / "passages.npy").write_bytes(bytes(data))
    run = cli("index", "--index", index, "--corpus", corpus)
    assert run.code == 0, run.err
    assert "Full rebuild: the previous index is unusable" in run.err
    assert version(index) != folder
