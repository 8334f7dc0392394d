"""The codebook artifact: codewords (+ the RQ-VAE encoder) and a JSON manifest, content-addressed.

Layout: `<root>/<codebook_id>/{arrays.npz, manifest.json}` and `<root>/LATEST` naming the newest.
`codebook_id` is a hash of every array and of the manifest's defining fields, so two runs that
train the same codewords get the same id (and folder), and loading recomputes the hash: a file
edited or truncated in transit is refused instead of silently producing different SIDs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.errors import InputError

ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
UNHASHED_KEYS = ("codebook_id", "lineage")  # provenance, not content
METHODS = ("rq_kmeans", "rq_vae", "rq_balanced")


class ArtifactError(InputError, ValueError):
    """A codebook artifact is missing, malformed, or fails its content hash."""


def mlp_forward(X: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """`x @ Wᵀ + b` per layer, ReLU between layers (not after the last), float32."""
    out = np.asarray(X, dtype=np.float32)
    for i, (W, b) in enumerate(layers):
        out = out @ W.T + b
        if i < len(layers) - 1:
            np.maximum(out, 0, out=out)
    return out


def content_hash(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> str:
    """sha256 over arrays (name, dtype, shape, bytes) and the defining manifest fields."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    core = {k: v for k, v in manifest.items() if k not in UNHASHED_KEYS}
    h.update(json.dumps(core, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _layer_key(part: str, index: int, kind: str) -> str:
    """The artifact's array name of one MLP parameter: `encoder.0.weight`, `decoder.1.bias` …"""
    return f"{part}.{index}.{kind}"


def mlp_arrays(encoder: list[tuple[np.ndarray, np.ndarray]],
               decoder: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """RQ-VAE encoder/decoder `(W, b)` layers as named arrays for `build_artifact`; the
    artifact's `encoder_layers`/`decoder_layers` read them back."""
    return {_layer_key(part, i, kind): arr
            for part, layers in (("encoder", encoder), ("decoder", decoder))
            for i, (W, b) in enumerate(layers) for kind, arr in (("weight", W), ("bias", b))}


def _layers(arrays: dict[str, np.ndarray], prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    count = sum(1 for i in range(len(arrays)) if _layer_key(prefix, i, "weight") in arrays)
    return [(arrays[_layer_key(prefix, i, "weight")], arrays[_layer_key(prefix, i, "bias")])
            for i in range(count)]


@dataclass(frozen=True)
class CodebookArtifact:
    """Codewords `(L, M, E)`, optional MLP encoder/decoder, and the manifest (with the id)."""

    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def codebook_id(self) -> str:
        return self.manifest["codebook_id"]

    @property
    def codebooks(self) -> np.ndarray:
        return self.arrays["codebooks"]

    @property
    def dim(self) -> int:
        """D of the input embeddings (the encoder's input for RQ-VAE)."""
        return int(self.manifest["D"])

    @property
    def encoder_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return _layers(self.arrays, "encoder")

    @property
    def decoder_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return _layers(self.arrays, "decoder")

    def project(self, X: np.ndarray) -> np.ndarray:
        """What gets quantized: the embeddings, or the RQ-VAE encoder's latent vectors."""
        layers = self.encoder_layers
        return mlp_forward(X, layers) if layers else np.asarray(X, dtype=np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction of the input embeddings from codes (through the decoder if any)."""
        from hourglass.quant.kernel import reconstruct

        z = reconstruct(codes, self.codebooks)
        layers = self.decoder_layers
        return mlp_forward(z, layers) if layers else z


def build_artifact(codebooks: np.ndarray, method: str, dim: int, seed: int, sample_size: int,
                   distortion: list[float], extra_arrays: dict[str, np.ndarray] | None = None,
                   extra: dict[str, Any] | None = None,
                   lineage: dict[str, Any] | None = None) -> CodebookArtifact:
    """Assemble arrays and manifest and stamp the content hash as `codebook_id`."""
    if method not in METHODS:
        raise ArtifactError(f"unknown method {method!r}; known: {METHODS}")
    C = np.ascontiguousarray(codebooks, dtype=np.float32)
    arrays = {"codebooks": C, **{k: np.ascontiguousarray(v, dtype=np.float32)
                                 for k, v in (extra_arrays or {}).items()}}
    L, M, E = C.shape
    manifest: dict[str, Any] = {
        "format": 1, "L": L, "M": M, "D": int(dim), "latent_dim": E, "method": method,
        "seed": int(seed), "sample_size": int(sample_size),
        "distortion": [float(x) for x in distortion], **(extra or {}),
    }
    manifest = json.loads(json.dumps(manifest))  # the exact values a reload will see
    manifest["codebook_id"] = content_hash(arrays, manifest)
    manifest["lineage"] = lineage or {}
    return CodebookArtifact(arrays, manifest)


def save_artifact(art: CodebookArtifact, root: str) -> str:
    """Write `<root>/<codebook_id>/` atomically (temp folder + rename); return the folder."""
    target = Path(root) / art.codebook_id
    if target.exists():
        load_artifact(str(target))  # same id → same content; refuse a corrupt leftover
        return str(target)
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{art.codebook_id}-", dir=root))
    try:
        np.savez(tmp / ARRAYS_FILE, **art.arrays)
        (tmp / MANIFEST_FILE).write_text(json.dumps(art.manifest, indent=2, sort_keys=True))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)


def load_artifact(path: str) -> CodebookArtifact:
    """Read an artifact folder and verify its content hash and shapes."""
    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        # np.load raises the zip layer's own errors for a truncated or overwritten arrays.npz
        raise ArtifactError(f"cannot read codebook artifact {path} ({type(exc).__name__}: "
                            f"{exc}): it is damaged or incomplete; re-run train_codebooks, or "
                            "point codebook_path at an intact artifact") from exc
    expected = manifest.get("codebook_id")
    actual = content_hash(arrays, manifest)
    if expected != actual:
        raise ArtifactError(f"codebook artifact {path}: content hash {actual} != id {expected}")
    C = arrays.get("codebooks")
    if C is None or C.shape != (manifest["L"], manifest["M"], manifest["latent_dim"]):
        raise ArtifactError(f"codebook artifact {path}: codebooks do not match the manifest")
    return CodebookArtifact(arrays, manifest)


def write_latest(root: str, codebook_id: str) -> None:
    """Point `<root>/LATEST` at `codebook_id` (atomic replace)."""
    tmp = Path(root) / f".{LATEST_FILE}.tmp"
    tmp.write_text(codebook_id + "\n")
    os.replace(tmp, Path(root) / LATEST_FILE)


def resolve_artifact(path: str) -> str:
    """An artifact folder as given, or the one a codebooks root's `LATEST` names."""
    p = Path(path)
    if (p / MANIFEST_FILE).exists():
        return str(p)
    latest = p / LATEST_FILE
    if latest.exists():
        return str(p / latest.read_text().strip())
    raise ArtifactError(f"{path} is neither a codebook artifact nor a codebooks root with "
                        f"{LATEST_FILE}: run train_codebooks first or pass the artifact folder")


class ArtifactEncoder:
    """Embeddings → SIDs for one artifact: the RQ-VAE encoder if any, then the exact kernel.

    `device="cpu"` uses the numpy kernel; any torch device (`cuda`, `auto`) the torch kernel.
    Both give identical codes, so the device is a speed choice, never a result choice.
    """

    def __init__(self, art: CodebookArtifact, device: str = "cpu", chunk_rows: int | None = None):
        from hourglass.quant.kernel import GreedyEncoder

        self.codebook_id = art.codebook_id
        self.dim = art.dim
        self._art = art
        if device == "cpu":
            self.kernel = GreedyEncoder(art.codebooks, chunk_rows)
        else:
            from hourglass.quant.torch_kernel import TorchGreedyEncoder

            self.kernel = TorchGreedyEncoder(art.codebooks, device)

    def encode(self, X: np.ndarray):
        """`Encoded` codes and residual norms (in latent space for RQ-VAE) of `(n, D)` rows."""
        from hourglass.quant.kernel import as_rows

        return self.kernel.encode(self._art.project(as_rows(X, self.dim)))
