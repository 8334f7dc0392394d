"""The SID index folder of one rewrite run: `trie.npz`, `vocab.json`, `manifest.json`.

Keyed by strategy (`<root>/sid_index/<strategy>/`) and stamped with the rewrite's lineage (source
codebook_id, item_sids and item_sids_rw versions), so a trainer or evaluator can check that the
trie it constrains decoding with belongs to the SIDs it trained on. The manifest is written
last: a folder without one is an interrupted export, and `load_sid_index` refuses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hourglass.errors import MissingInputError
from hourglass.rewrite.trie import FORMAT_VERSION, SidTrie

TRIE_FILE = "trie.npz"
VOCAB_FILE = "vocab.json"
MANIFEST_FILE = "manifest.json"
VOCAB_FORMAT = "hourglass-sid-vocab"


@dataclass(frozen=True)
class SidIndexInfo:
    """Where an index was written and its size."""

    path: str
    n_sids: int
    n_nodes: int
    vocab_size: int
    max_depth: int


def sid_index_dir(root: str, strategy_name: str) -> str:
    """`<root>/sid_index/<strategy>`: one folder per rewrite strategy (the run's key)."""
    return str(Path(root) / "sid_index" / strategy_name)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_sid_index(folder: str, trie: SidTrie, manifest: dict[str, Any]) -> SidIndexInfo:
    """Write trie, vocabulary and manifest to `folder`; the manifest is also stamped in the trie.

    `vocab.json` lists the tokens in trie-id order (index = the id `SidTrie` uses), so a
    tokenizer and the trie agree on ids without re-sorting.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # mark the folder incomplete until done
    trie.meta = dict(manifest)
    trie.save(str(out / TRIE_FILE))
    _write_json(out / VOCAB_FILE, {"format": VOCAB_FORMAT, "format_version": 1,
                                   "strategy": manifest.get("strategy"), "tokens": trie.vocab})
    info = SidIndexInfo(path=str(out), n_sids=len(trie), n_nodes=trie.n_nodes,
                        vocab_size=len(trie.vocab), max_depth=trie.max_depth)
    _write_json(out / MANIFEST_FILE, {
        **manifest, "trie_file": TRIE_FILE, "trie_format_version": FORMAT_VERSION,
        "trie_sha256": _sha256(out / TRIE_FILE), "vocab_file": VOCAB_FILE,
        "n_sids": info.n_sids, "n_nodes": info.n_nodes, "vocab_size": info.vocab_size,
        "max_depth": info.max_depth,
    })
    return info


def load_sid_index(folder: str, verify: bool = True) -> tuple[SidTrie, list[str], dict[str, Any]]:
    """(trie, vocabulary, manifest) of an exported folder; `verify` checks the trie's hash."""
    out = Path(folder)
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.exists():
        raise MissingInputError(f"{folder}: no {MANIFEST_FILE} (missing or interrupted export): "
                                "re-run rewrite_sids to export it")
    manifest = json.loads(manifest_path.read_text())
    trie_path = out / manifest.get("trie_file", TRIE_FILE)
    if verify and _sha256(trie_path) != manifest.get("trie_sha256"):
        raise ValueError(f"{trie_path} does not match the hash in its manifest")
    trie = SidTrie.load(str(trie_path))
    vocab = json.loads((out / manifest.get("vocab_file", VOCAB_FILE)).read_text())["tokens"]
    if vocab != trie.vocab:
        raise ValueError(f"{folder}: vocab.json and the trie disagree")
    return trie, vocab, manifest
