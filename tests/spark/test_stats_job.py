"""The stats stage on Delta tables: quarantine, reconciliation, run slices, lineage, report."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.config import ConfigError
from hourglass.sid_tokens import codes_to_tokens

pytestmark = pytest.mark.spark

N, L, M = 400, 3, 8


@pytest.fixture(scope="module")
def tables(spark, tmp_path_factory):
    """item_sids (with bad rows) and item_sids_rw (two strategies) in a fresh root."""
    from hourglass.spark.tables import write_table

    root = str(tmp_path_factory.mktemp("stats_job"))
    rng = np.random.default_rng(3)
    codes = np.stack([rng.integers(0, M, N), np.minimum(rng.zipf(1.7, N) - 1, M - 1),
                      rng.integers(0, M, N)], axis=1)
    codes[0] = [7, 7, 7]  # so the largest code is 7 and the inferred M is 8
    norms = np.sort(rng.random((N, L)), axis=1)[:, ::-1]
    rows = [(f"i{i}", codes[i].tolist(), norms[i].tolist(), "cb1") for i in range(N)]
    bad = [("short", [1, 2]), ("negative", [1, -1, 2]), ("twin", [1, 2, 3]), ("twin", [1, 2, 4])]
    rows += [(i, c, [0.5, 0.2, 0.1][: len(c)], "cb1") for i, c in bad]
    sids = spark.createDataFrame(rows, "item_id STRING, codes ARRAY<INT>, "
                                       "residual_norms ARRAY<FLOAT>, codebook_id STRING")
    write_table(sids, f"{root}/item_sids", {"job": "test"})
    rw = [(f"i{i}", codes_to_tokens(codes[i]), "none", "cb1") for i in range(N)]
    rw += [(f"i{i}", [t for t in codes_to_tokens(codes[i]) if not t.startswith("<b_")],
            "drop_layer_2", "cb1") for i in range(N)]
    write_table(spark.createDataFrame(rw, "item_id STRING, tokens ARRAY<STRING>, strategy STRING, "
                                          "source_codebook_id STRING"),
                f"{root}/item_sids_rw", {"job": "test"})
    return root, codes


def counts_by_run(spark, ref):
    from hourglass.spark.tables import read_table

    rows = read_table(spark, ref).df.groupBy("run_id").count().collect()
    return {r["run_id"]: r["count"] for r in rows}


def test_runs_share_tables_and_rerun_replaces(spark, tables):
    from hourglass.spark.tables import commit_lineage, latest_version, read_table
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run
    from hourglass.stages.report import ReportConfig, build_report

    root, codes = tables
    orig = HourglassStatsConfig(output_root=root, run_id="orig")
    res = run(spark, orig)
    assert (res.rows_in, res.items, res.quarantined) == (404, 400, 4)
    assert (res.num_layers, res.num_codes, res.m_source) == (3, 8, "inferred")
    q = read_table(spark, f"{root}/quarantine").df.where("stage = 'hourglass_stats_orig'")
    assert sorted(r["reason"] for r in q.collect()) == [
        "code outside [0, 8)", "codes length 2, expected 3", "duplicate item_id (2 rows)",
        "duplicate item_id (2 rows)"]
    lin = commit_lineage(spark, f"{root}/sid_summary")
    assert lin["run_id"] == "orig" and lin["inputs"] == {
        f"{root}/item_sids": latest_version(spark, f"{root}/item_sids")}

    drop = HourglassStatsConfig(output_root=root, run_id="drop2", input_table="item_sids_rw",
                                strategy="drop_layer_2", num_layers=3, num_codes=8)
    res2 = run(spark, drop)
    assert (res2.input_kind, res2.items, res2.quarantined) == ("rewritten", 400, 0)
    summary = read_table(spark, f"{root}/sid_summary").df.toPandas().set_index(["run_id", "layer"])
    assert summary.loc[("drop2", 2), "n_tokens"] == 0
    assert summary.loc[("drop2", 2), "distinct_prefixes"] == len({(a, c) for a, _, c in codes})
    assert summary.loc[("orig", 1), "strategy"] is None
    assert summary.loc[("drop2", 1), "strategy"] == "drop_layer_2"

    before = {t: counts_by_run(spark, f"{root}/{t}") for t in
              ("sid_summary", "sid_layer_stats", "sid_flow")}
    assert run(spark, orig).items == 400  # the same inputs again: replaced, not appended
    after = {t: counts_by_run(spark, f"{root}/{t}") for t in before}
    assert after == before and before["sid_summary"] == {"orig": 3, "drop2": 3}
    q = read_table(spark, f"{root}/quarantine").df.where("stage = 'hourglass_stats_orig'")
    assert q.count() == 4

    path = build_report(spark, ReportConfig(output_root=root, title="job test"))
    with open(path) as f:
        page = f.read()
    assert path.endswith("report/index.html") and "Run orig" in page and "Run drop2" in page
    _check_mlflow_runs(root, summary)


def _check_mlflow_runs(root: str, summary) -> None:
    """The stats runs and the report as MLflow runs in the local store: each summary column a
    metric over the layers (step = layer), equal to the table; the report's HTML an artifact."""
    from mlflow.tracking import MlflowClient

    from hourglass.tracking import tracking_uri

    client = MlflowClient(tracking_uri(root))
    exp = client.get_experiment_by_name("hourglass").experiment_id
    runs = client.search_runs([exp], "tags.`hourglass.stats_run_id` = 'drop2'")
    assert len(runs) == 1 and runs[0].data.tags["hourglass.input_kind"] == "rewritten"
    history = client.get_metric_history(runs[0].info.run_id, "distinct_prefixes")
    assert {m.step: m.value for m in history} == {
        layer: float(summary.loc[("drop2", layer), "distinct_prefixes"]) for layer in (1, 2, 3)}
    (report,) = client.search_runs([exp], "tags.`hourglass.job` = 'report'")
    assert "report/index.html" in {a.path for a in client.list_artifacts(
        report.info.run_id, "report")}


def test_scanned_plan_equals_row_plan(spark, tables):
    """Without the twins the same rows take the two-scan plan: its tables equal the row plan's
    (run `orig`, which quarantined the twins) column for column; items get their segment from
    the token tags and the SID table version each run names."""
    from pandas.testing import assert_frame_equal

    from hourglass.spark.segments import segment_tags
    from hourglass.spark.stats.io import read_runs
    from hourglass.spark.tables import latest_version, read_table, write_table
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run

    root, codes = tables
    src = read_table(spark, f"{root}/item_sids").df
    write_table(src.where("item_id != 'twin'"), f"{root}/item_sids_once", {"job": "test"})
    run(spark, HourglassStatsConfig(output_root=root, run_id="orig"))
    res = run(spark, HourglassStatsConfig(output_root=root, run_id="once",
                                          input_table="item_sids_once"))
    assert (res.rows_in, res.items, res.quarantined) == (402, 400, 2)
    keys = {"sid_summary": ["layer"], "sid_layer_stats": ["layer", "rank"],
            "sid_flow": ["src_layer", "src_token", "dst_layer", "dst_token"]}
    for table, by in keys.items():
        got = {r: read_runs(spark, f"{root}/{table}", [r]).drop(columns="run_id")
               .sort_values(by, ignore_index=True) for r in ("orig", "once")}
        if table == "sid_summary":
            assert got["once"]["input_table"].eq(f"{root}/item_sids_once").all()
            assert got["once"]["input_version"].eq(
                latest_version(spark, f"{root}/item_sids_once")).all()
            got = {r: f.drop(columns=["input_table", "input_version"]) for r, f in got.items()}
        assert_frame_equal(got["once"], got["orig"], obj=table)
    stats = read_runs(spark, f"{root}/sid_layer_stats", ["once"])
    head = set(stats[(stats["layer"] == 2) & (stats["segment"] == "head")]["token"])
    tags = {r["item_id"]: r["segment"] for r in segment_tags(
        spark, f"{root}/sid_summary", f"{root}/sid_layer_stats", "once", 2).frame.collect()}
    assert tags == {f"i{i}": "head" if codes[i][1] in head else "tail" for i in range(N)}
    # the row plan's run tags the same items; the twins (quarantined) get no segment
    assert segment_tags(spark, f"{root}/sid_summary", f"{root}/sid_layer_stats", "orig",
                        2).frame.count() == N


def test_bad_configs_fail_before_writing(spark, tables):
    from hourglass.spark.tables import table_exists
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run

    root, _ = tables
    with pytest.raises(ConfigError, match="'head_share'"):
        HourglassStatsConfig.from_dict({"run_id": "x", "head_share": 0})
    with pytest.raises(ConfigError, match="'run_id'"):
        HourglassStatsConfig.from_dict({"run_id": "a'b"})
    with pytest.raises(ConfigError, match="'strategy'"):
        run(spark, HourglassStatsConfig(output_root=root, run_id="many",
                                        input_table="item_sids_rw", num_layers=3, num_codes=8))
    with pytest.raises(ConfigError, match="'num_layers'"):
        run(spark, HourglassStatsConfig(output_root=root, run_id="noshape",
                                        input_table="item_sids_rw", strategy="none"))
    assert not table_exists(spark, f"{root}/nothing")


def test_scanned_plan_on_empty_and_all_bad_tables(spark, tmp_path):
    """No rows, or only bad ones: nothing to measure, every row quarantined, counts reconcile."""
    from hourglass.spark.stats.io import read_runs
    from hourglass.spark.tables import write_table
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run

    root = str(tmp_path)
    ddl = "item_id STRING, codes ARRAY<INT>, residual_norms ARRAY<FLOAT>, codebook_id STRING"
    write_table(spark.createDataFrame([], ddl), f"{root}/empty", {"job": "test"})
    write_table(spark.createDataFrame([("a", [1, 9, 2], [0.5, 0.2, 0.1], "cb"),
                                       ("b", [1, 2], [0.5, 0.2], "cb")], ddl),
                f"{root}/bad", {"job": "test"})
    for table, rows in (("empty", 0), ("bad", 2)):
        res = run(spark, HourglassStatsConfig(output_root=root, run_id=table, input_table=table,
                                              num_layers=3, num_codes=8))
        assert (res.rows_in, res.items, res.quarantined) == (rows, 0, rows)
        summary = read_runs(spark, f"{root}/sid_summary", [table])
        assert summary["n_tokens"].tolist() == [0, 0, 0]
