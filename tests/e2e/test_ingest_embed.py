"""End to end on a slice of the bundled Amazon Office sample: ingest → embed, via the jobs'
stage runners, with one deliberately broken row of every class appended."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hourglass.spark.tables import read_table
from hourglass.stages import embed_items, ingest

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "amazon-office"
N_ITEMS = 120


def _slice(tmp_path: Path) -> tuple[str, str, int, int]:
    lines = (SAMPLE / "items.jsonl").read_text().splitlines()[:N_ITEMS]
    keep = {json.loads(x)["item_id"] for x in lines}
    first = json.loads(lines[0])
    broken_items = [
        json.dumps({**first, "item_id": ""}),                          # missing id
        json.dumps({**first, "title": first["title"] + " (v2)"}),      # conflicting duplicate
        json.dumps(json.loads(lines[1])),                              # exact duplicate
        '{"item_id": "999999", "title": "cut off',                     # unparseable
        json.dumps({"item_id": "empty-1", "title": "", "brand": "x"}),  # no text to embed
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(lines + broken_items) + "\n")
    with open(SAMPLE / "interactions.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["item_id"] in keep]
    rows_out = [f"{r['user_id']},{r['item_id']},{r['position']}" for r in rows]
    broken_inter = ["u-x,not-an-item,0", f"u-x,{first['item_id']},yesterday",
                    f",{first['item_id']},1", "u-y,1,2,3,4"]
    (tmp_path / "inter.csv").write_text(
        "\n".join(["user_id,item_id,position", *rows_out, *broken_inter]) + "\n")
    return (str(tmp_path / "items.jsonl"), str(tmp_path / "inter.csv"),
            len(lines) + len(broken_items), len(rows) + len(broken_inter))


def test_ingest_then_embed(spark, tmp_path, table_root):
    items_path, inter_path, n_items, n_inter = _slice(tmp_path)
    counts = ingest.run(spark, ingest.IngestConfig.from_dict({
        "items_path": items_path, "interactions_path": inter_path, "ts_column": "position",
        "output_root": table_root}))
    # first item quarantined twice over (conflict), 1 exact dup, 1 missing id, 1 unparseable
    assert counts.items_in == n_items
    assert counts.items_written == N_ITEMS - 1 + 1  # loses the conflicted id, gains empty-1
    assert counts.items_quarantined == n_items - counts.items_written
    assert counts.interactions_in == n_inter
    q = read_table(spark, f"{table_root}/quarantine").df
    reasons = {r.reason.split(":")[0] for r in q.collect()}
    assert {"missing item_id", "conflicting duplicate item_id", "unparseable row",
            "exact duplicate of an earlier row", "unknown item_id", "unparseable ts",
            "missing user_id"} <= reasons

    emb = embed_items.run(spark, embed_items.EmbedItemsConfig.from_dict(
        {"output_root": table_root, "batch_size": 32}))
    assert (emb.items_in, emb.embedded, emb.quarantined, emb.dim) == (N_ITEMS, N_ITEMS - 1, 1,
                                                                     384)
    table = read_table(spark, f"{table_root}/item_embeddings").df.toPandas()
    vectors = np.stack(table["embedding"].to_numpy()).astype(np.float32)
    assert vectors.shape == (N_ITEMS - 1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert set(table["model"]) == {"all-MiniLM-L6-v2"}
    assert table["item_id"].is_unique and "empty-1" not in set(table["item_id"])
    eq = q.sparkSession.read.format("delta").load(f"{table_root}/quarantine")
    assert eq.where("stage = 'embed_items' AND item_id = 'empty-1'").count() == 1
