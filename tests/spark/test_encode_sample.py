"""The encode stages on the bundled Amazon Office sample: real MiniLM title embeddings →
train_codebooks → encode_items (L=3, small M), counts reconciling, codes equal the kernel.

Embedding dominates the cost, so a slice of the items is embedded on the driver with the
project's encoder (the embed stage has its own end-to-end test); `make demo` runs the whole
sample through ingest → embed → train → encode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hourglass.embed.encoder import TextEncoder
from hourglass.embed.text import item_text
from hourglass.quant.artifact import load_artifact
from hourglass.quant.kernel import encode_greedy
from hourglass.spark.tables import read_table
from hourglass.stages import encode_items, train_codebooks

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "amazon-office"
N_ITEMS, M = 500, 32


def embed_titles(texts: list[str]) -> np.ndarray:
    """MiniLM on one torch thread (faster than two on a busy 2-core box), restored after."""
    import torch

    threads = torch.get_num_threads()
    try:
        return TextEncoder(batch_size=64, max_length=32, threads=1).encode(texts)
    finally:
        torch.set_num_threads(threads)


def test_bundled_sample_to_item_sids(spark, table_root):
    items = [json.loads(x) for x in (SAMPLE / "items.jsonl").read_text().splitlines()[:N_ITEMS]]
    items = [(it["item_id"], item_text(it, ["title"])) for it in items]
    items = [(i, t) for i, t in items if t]
    X = embed_titles([t for _, t in items])
    rows = [(i, x.tolist(), "all-MiniLM-L6-v2") for (i, _), x in zip(items, X, strict=True)]
    rows.append(("broken", [0.0] * 100, "all-MiniLM-L6-v2"))  # a truncated vector
    (spark.createDataFrame(rows, "item_id string, embedding array<float>, model string")
     .write.format("delta").save(f"{table_root}/item_embeddings"))

    trained = train_codebooks.run(spark, train_codebooks.TrainCodebooksConfig.from_dict(
        {"output_root": table_root, "codebook_size": M, "num_layers": 3}))
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(output_root=table_root))

    assert trained.dim == 384 and trained.sample_rows == len(items)
    assert trained.distortion[0] > trained.distortion[1] > trained.distortion[2]
    assert (counts.rows_in, counts.encoded, counts.quarantined) == (len(rows), len(items), 1)
    assert counts.reasons == {"wrong length: 100 values, expected 384": 1}
    pdf = read_table(spark, f"{table_root}/item_sids").df.toPandas().set_index("item_id")
    codes = np.stack(pdf.loc[[i for i, _ in items], "codes"].to_numpy())
    assert codes.shape == (len(items), 3) and codes.min() >= 0 and codes.max() < M
    assert all(len(np.unique(codes[:, i])) > M // 2 for i in range(3))  # no layer collapsed
    ref = encode_greedy(X, load_artifact(trained.path).codebooks)
    np.testing.assert_array_equal(codes, ref.codes)
