"""Export a Hugging Face encoder to ONNX once, where torch is installed, for torch-free executors.

    python -m hourglass.embed.onnx_export --output_dir /shared/models/minilm-onnx

The output folder holds `model.onnx` plus the model's config and tokenizer files, so
`TextEncoder(folder, backend="onnx")` (and `embed_items --backend onnx --model_dir folder`)
loads it with ONNX Runtime alone. The export checks itself: probe texts must embed to within
`tolerance` of the torch model, else no folder is left behind.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hourglass.embed.encoder import ONNX_FILE, TextEncoder, default_model_dir

PROBES = ["stapler", "a box of 500 blue ballpoint pens, medium point",
          "ergonomic mesh office chair with adjustable lumbar support and armrests"]
# Everything but the weights: the tokenizer and config files the ONNX folder needs.
_COPIED = ("*.json", "*.txt", "*.model")


def export_onnx(output_dir: str, model_dir: str | None = None, opset: int = 17,
                tolerance: float = 1e-5) -> float:
    """Write the ONNX folder; return the largest probe difference against torch."""
    import torch

    src = Path(model_dir or default_model_dir())
    out = Path(output_dir)
    if (out / ONNX_FILE).exists():
        raise FileExistsError(f"{out / ONNX_FILE} exists; choose an empty output_dir")
    reference = TextEncoder(str(src), backend="torch")
    sample = reference.tokenizer(PROBES, padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        for pattern in _COPIED:
            for f in src.glob(pattern):
                shutil.copy2(f, tmp)
        with torch.inference_mode():
            torch.onnx.export(reference.model, tuple(sample[n] for n in names),
                              str(Path(tmp) / ONNX_FILE), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=opset, dynamo=False)
        exported = TextEncoder(tmp, backend="onnx")
        diff = float(np.abs(exported.encode(PROBES) - reference.encode(PROBES)).max())
        if diff > tolerance:
            raise RuntimeError(f"ONNX export differs from torch by {diff:.2e} > {tolerance:.0e}")
        out.mkdir(parents=True, exist_ok=True)
        for f in Path(tmp).iterdir():
            shutil.move(str(f), out / f.name)
    return diff


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="empty folder for the ONNX model")
    parser.add_argument("--model_dir", default=None,
                        help="Hugging Face model folder (default: all-MiniLM-L6-v2, bundled)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    args = parser.parse_args(argv)
    diff = export_onnx(args.output_dir, args.model_dir, args.opset)
    print(f"exported {args.output_dir}/{ONNX_FILE}; largest probe difference to torch {diff:.1e}")


if __name__ == "__main__":
    main()
