"""Load a fine-tuned model folder for evaluation (the decoding itself is `hourglass.decode`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hourglass.train.layout import META_FILE


def load_finetuned(model_dir: str, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, training metadata) of a trainer's `final/` folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    meta_file = folder / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.to(device).eval()
    return model, tok, meta
