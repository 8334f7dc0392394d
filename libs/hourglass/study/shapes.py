"""Which RQ shape shows the hourglass: layer concentration of one dataset at several M.

The paper's RQ3x12 (M = 4096 on hundreds of millions of items) has a strong neck; a bundled
sample of a few thousand items at M = 64 may barely have one. For each M this trains the
recipe's codebooks (same method, seed and iterations), encodes and measures every layer (Gini,
top-1 share, the share of the codebook covering half the items), all into the dataset's own
tables beside its embeddings.

The criterion: the neck is layer 2's Gini above the larger Gini of its neighbours (layers 1 and
3): positive only when the middle layer is the most concentrated one, the shape of an hourglass
(a concentrated layer 3 is a funnel, not a neck). Sparsity raises every layer's Gini as M grows
against N, so a difference isolates the middle layer; the study runs at the M with the widest
neck (or the least negative one, where no M has a neck — say so when reading the tables).
"""

from __future__ import annotations

from typing import Any


def shape_steps(recipe_codebooks: dict, M: int) -> list[dict]:
    """The SID steps of one shape, named apart from the study's own tables."""
    return [
        {**recipe_codebooks, "stage": "train_codebooks", "codebook_size": M,
         "codebooks_root": f"codebooks_M{M}"},
        {"stage": "encode_items", "sids_table": f"item_sids_M{M}",
         "codebook_path": f"codebooks_M{M}"},
        {"stage": "hourglass_stats", "run_id": f"shape_M{M}", "input_table": f"item_sids_M{M}",
         "codebooks_root": f"codebooks_M{M}", "tracking": False},
    ]


def measure_shape(spark: Any, root: str, recipe_codebooks: dict, M: int) -> dict:
    """Per layer (gini, top1_share, norm_entropy, head_tokens / M) of the dataset at this M."""
    from pyspark.sql import functions as F

    from hourglass.spark.tables import read_table
    from hourglass.stages.pipeline import PipelineConfig
    from hourglass.stages.pipeline import run as run_pipeline

    steps = shape_steps(recipe_codebooks, M)
    for step in steps:  # folders are relative to the dataset's tables
        for key in ("codebooks_root", "codebook_path"):
            if key in step:
                step[key] = f"{root}/{step[key]}"
    run_pipeline(spark, PipelineConfig.from_dict({"output_root": root, "steps": steps}))
    rows = (read_table(spark, f"{root}/sid_summary").df
            .where(F.col("run_id") == f"shape_M{M}")
            .select("layer", "n_items", "gini", "top1_share", "norm_entropy", "head_tokens",
                    "utilization").collect())
    layers = {int(r["layer"]): {"gini": float(r["gini"]), "top1_share": float(r["top1_share"]),
                                "norm_entropy": float(r["norm_entropy"]),
                                "head_token_share": int(r["head_tokens"]) / M,
                                "utilization": float(r["utilization"]),
                                "n_items": int(r["n_items"])}
              for r in rows if r["layer"] is not None and int(r["layer"]) >= 1}
    return {"M": M, "layers": {str(k): v for k, v in sorted(layers.items())},
            "neck": neck(layers)}


def neck(layers: dict[int, dict]) -> float:
    """Layer 2's Gini minus the larger Gini of layers 1 and 3 (those present)."""
    around = [layers[x]["gini"] for x in (1, 3) if x in layers]
    return layers[2]["gini"] - max(around) if 2 in layers and around else 0.0


def choose(shapes: dict[int, dict]) -> int:
    """The M with the widest neck (ties: the smaller M, more items per token)."""
    return min(shapes, key=lambda m: (-round(shapes[m]["neck"], 6), m))


def shapes_table(shapes: dict[int, dict]) -> str:
    """Markdown: one row per (M, layer)."""
    from hourglass.study.tables import markdown

    rows = []
    for M, s in sorted(shapes.items()):
        for layer, v in s["layers"].items():
            rows.append([str(M), layer, f"{v['gini']:.3f}", f"{v['top1_share']:.3f}",
                         f"{v['head_token_share']:.3f}", f"{v['norm_entropy']:.3f}",
                         f"{v['utilization']:.3f}",
                         f"{s['neck']:+.3f}" if layer == "2" else ""])
    return markdown(["M", "layer", "Gini", "top-1 share", "tokens covering 50% of items / M",
                     "entropy / log M", "utilization", "neck (layer-2 Gini − max of 1, 3)"],
                    rows)
