"""Ingest quarantines every class of broken input and reconciles counts exactly."""

from __future__ import annotations

import json

import pytest

from hourglass.config import ConfigError
from hourglass.spark.tables import read_table
from hourglass.stages.ingest import IngestConfig, run

pytestmark = pytest.mark.spark

GOOD_ITEMS = [
    {"item_id": f"i{i}", "title": f"Item {i}", "description": "", "brand": "b",
     "categories": "c"} for i in range(5)
]


def _write_inputs(tmp_path):
    items = tmp_path / "items.jsonl"
    lines = [json.dumps(r) for r in GOOD_ITEMS]
    lines += [
        json.dumps({"item_id": "", "title": "no id"}),                      # missing id
        json.dumps({"title": "null id"}),                                   # missing id
        json.dumps({"item_id": "c1", "title": "first"}),                    # conflicting
        json.dumps({"item_id": "c1", "title": "second"}),                   # conflicting
        json.dumps(GOOD_ITEMS[0]),                                          # exact duplicate
        '{"item_id": "broken", "title": ',                                  # unparseable
    ]
    items.write_text("\n".join(lines) + "\n")
    inter = tmp_path / "interactions.csv"
    inter.write_text("\n".join([
        "user_id,item_id,position",
        "u1,i0,0", "u1,i1,1", "u1,i2,2", "u2,i3,0", "u2,i4,1",
        "u3,zz,0",       # unknown item
        "u3,c1,1",       # item quarantined → unknown
        "u4,i1,later",   # unparseable ts
        ",i1,3",         # missing user
        "u5,i2,",        # missing ts
        "u6,i2,1,extra,fields",  # malformed row
    ]) + "\n")
    return str(items), str(inter)


def test_ingest_quarantines_each_class(spark, tmp_path, table_root):
    items_path, inter_path = _write_inputs(tmp_path)
    cfg = IngestConfig.from_dict({"items_path": items_path, "interactions_path": inter_path,
                                  "ts_column": "position", "output_root": table_root})
    counts = run(spark, cfg)
    assert (counts.items_in, counts.items_written, counts.items_quarantined) == (11, 5, 6)
    assert (counts.interactions_in, counts.interactions_written,
            counts.interactions_quarantined) == (11, 5, 6)

    items = read_table(spark, f"{table_root}/items").df
    assert sorted(r.item_id for r in items.collect()) == [f"i{i}" for i in range(5)]
    inter = read_table(spark, f"{table_root}/interactions").df
    assert dict(inter.dtypes)["ts"] == "bigint"
    assert sorted((r.user_id, r.item_id, r.ts) for r in inter.collect())[:2] == [
        ("u1", "i0", 0), ("u1", "i1", 1)]

    q = read_table(spark, f"{table_root}/quarantine").df
    reasons = sorted((r.stage, r.reason.split(":")[0]) for r in q.collect())
    assert reasons == sorted([
        ("ingest_items", "missing item_id"), ("ingest_items", "missing item_id"),
        ("ingest_items", "conflicting duplicate item_id"),
        ("ingest_items", "conflicting duplicate item_id"),
        ("ingest_items", "exact duplicate of an earlier row"),
        ("ingest_items", "unparseable row"),
        ("ingest_interactions", "unknown item_id"), ("ingest_interactions", "unknown item_id"),
        ("ingest_interactions", "unparseable ts"), ("ingest_interactions", "missing user_id"),
        ("ingest_interactions", "missing ts"), ("ingest_interactions", "unparseable row"),
    ])
    payload = json.loads(q.where("reason = 'unparseable ts: later'").head().payload)
    assert payload["user_id"] == "u4"


def test_rerun_is_idempotent(spark, tmp_path, table_root):
    items_path, inter_path = _write_inputs(tmp_path)
    cfg = IngestConfig.from_dict({"items_path": items_path, "interactions_path": inter_path,
                                  "ts_column": "position", "output_root": table_root})
    run(spark, cfg)
    first = {t: sorted(map(repr, read_table(spark, f"{table_root}/{t}").df.collect()))
             for t in ("items", "interactions", "quarantine")}
    run(spark, cfg)
    for t, rows in first.items():
        again = read_table(spark, f"{table_root}/{t}")
        assert sorted(map(repr, again.df.collect())) == rows
    assert read_table(spark, f"{table_root}/items").version == 1


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="items_path"):
        IngestConfig.from_dict({"interactions_path": "x"})
    with pytest.raises(ConfigError, match="items_format"):
        IngestConfig.from_dict({"items_path": "a", "interactions_path": "b",
                                "items_format": "xml"})
