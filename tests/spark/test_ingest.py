"""Ingest quarantines every class of broken input and reconciles counts exactly."""

from __future__ import annotations

import json

import pytest

from hourglass.config import ConfigError
from hourglass.errors import InputError
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


def _ingest(spark, tmp_path, table_root, inter_path, **keys):
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(r) for r in GOOD_ITEMS) + "\n")
    cfg = IngestConfig.from_dict({"items_path": str(items), "interactions_path": str(inter_path),
                                  "output_root": table_root, **keys})
    counts = run(spark, cfg)
    inter = read_table(spark, f"{table_root}/interactions").df
    q = read_table(spark, f"{table_root}/quarantine").df.where("stage = 'ingest_interactions'")
    reasons = sorted((str(json.loads(r.payload).get("ts")), r.reason) for r in q.collect())
    return counts, inter, reasons


def test_csv_query_is_cleaned_and_overlong_quarantined(spark, tmp_path, table_root):
    inter = tmp_path / "interactions.csv"
    inter.write_text("\n".join([
        "user_id,item_id,position,query",
        "u1,i0,0,  cordless \t phones ",
        "u1,i1,1,",
        "u1,i2,2,   ",
        'u2,i3,0," ink  for\u00a0printers"',
        f"u2,i4,1,{'x' * 513}",
        f"u3,i4,0,{'y' * 512}",
        "u3,zz,1,unknown item keeps its old reason",
    ]) + "\n")
    counts, df, reasons = _ingest(spark, tmp_path, table_root, inter, ts_column="position")
    assert df.columns == ["user_id", "item_id", "ts", "query"]
    assert dict(df.dtypes)["query"] == "string"
    rows = sorted((r.user_id, r.ts, r.query) for r in df.collect())
    assert rows == [("u1", 0, "cordless phones"), ("u1", 1, None), ("u1", 2, None),
                    ("u2", 0, "ink for printers"), ("u3", 0, "y" * 512)]
    assert reasons == [("1", "query longer than 512 characters"), ("1", "unknown item_id")]
    assert (counts.interactions_in, counts.interactions_written,
            counts.interactions_quarantined) == (7, 5, 2)


def test_json_query_that_is_not_a_string_is_quarantined(spark, tmp_path, table_root):
    inter = tmp_path / "interactions.jsonl"
    lines = [{"user_id": "u1", "item_id": "i0", "ts": 0},  # no query field on the first lines
             {"user_id": "u1", "item_id": "i1", "ts": 1, "query": None},
             {"user_id": "u1", "item_id": "i2", "ts": 2, "query": " label  printer "},
             {"user_id": "u2", "item_id": "i0", "ts": 3, "query": 12},
             {"user_id": "u2", "item_id": "i1", "ts": 4, "query": {"text": "pens"}},
             {"user_id": "u2", "item_id": "i2", "ts": 5, "query": ["pens"]},
             {"user_id": "u2", "item_id": "i3", "ts": 6, "query": True},
             {"user_id": "u2", "item_id": "i4", "ts": 7, "query": "12"}]
    broken = '{"user_id": "u3", "item_id": "i0", "query": "pens", "ts": '
    inter.write_text("\n".join([*(json.dumps(r) for r in lines), broken]) + "\n")
    counts, df, reasons = _ingest(spark, tmp_path, table_root, inter)
    assert df.columns == ["user_id", "item_id", "ts", "query"]
    assert sorted((r.ts, r.query) for r in df.collect()) == [
        (0, None), (1, None), (2, "label printer"), (7, "12")]
    assert reasons == [("3", "query is not a string (JSON number)"),
                       ("4", "query is not a string (JSON object)"),
                       ("5", "query is not a string (JSON array)"),
                       ("6", "query is not a string (JSON boolean)"),
                       ("None", "unparseable row")]
    assert (counts.interactions_in, counts.interactions_written,
            counts.interactions_quarantined) == (9, 4, 5)
    q = read_table(spark, f"{table_root}/quarantine").df
    payload = json.loads(q.where("reason LIKE '%JSON object%'").head().payload)
    assert payload["query"] == '{"text":"pens"}'  # the value as it was, for whoever fixes it


def test_json_and_csv_without_query_keep_the_old_columns(spark, tmp_path, table_root):
    inter = tmp_path / "interactions.jsonl"
    inter.write_text(json.dumps({"user_id": "u1", "item_id": "i0", "ts": 0}) + "\n")
    _, df, _ = _ingest(spark, tmp_path, table_root, inter)
    assert df.dtypes == [("user_id", "string"), ("item_id", "string"), ("ts", "bigint")]
    csv = tmp_path / "interactions.csv"
    csv.write_text("user_id,item_id,ts,query\nu1,i0,0,pens\n")
    _, df, _ = _ingest(spark, tmp_path, table_root, csv, query_column="none")
    assert df.columns == ["user_id", "item_id", "ts"]


def test_query_column_names_the_source_column(spark, tmp_path, table_root):
    csv = tmp_path / "interactions.csv"
    csv.write_text("search,user_id,item_id,ts,query\n pens ,u1,i0,0,ignored\n")
    _, df, _ = _ingest(spark, tmp_path, table_root, csv, query_column="search")
    assert [tuple(r) for r in df.collect()] == [("u1", "i0", 0, "pens")]
    with pytest.raises(ConfigError, match="query_column.*'typo' is not in"):
        _ingest(spark, tmp_path, table_root, csv, query_column="typo")
    jsonl = tmp_path / "interactions.jsonl"
    jsonl.write_text(json.dumps({"user_id": "u1", "item_id": "i0", "ts": 0, "q": "x"}) + "\n")
    with pytest.raises(ConfigError, match="query_column.*no line"):
        _ingest(spark, tmp_path, table_root, jsonl, query_column="typo")


def test_parquet_query_must_be_a_string_column(spark, tmp_path, table_root):
    path = str(tmp_path / "interactions.parquet")
    (spark.createDataFrame([("u1", "i0", 0, 7)], "user_id string, item_id string, ts long, "
                           "query int").write.parquet(path))
    with pytest.raises(InputError, match="'query' is int, not a string"):
        _ingest(spark, tmp_path, table_root, path)
    _, df, _ = _ingest(spark, tmp_path, table_root, path, query_column="none")
    assert df.columns == ["user_id", "item_id", "ts"]
    good = str(tmp_path / "good.parquet")
    (spark.createDataFrame([("u1", "i0", 0, " a  b ")], "user_id string, item_id string, "
                           "ts long, query string").write.parquet(good))
    _, df, _ = _ingest(spark, tmp_path, table_root, good)
    assert [tuple(r) for r in df.collect()] == [("u1", "i0", 0, "a b")]
