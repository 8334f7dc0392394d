"""Each notebook runs top to bottom as plain Python on a slice of the bundled sample.

`run_pipeline` builds the tables (ingest → embed → codebooks → encode → stats → rewrite), then
`explore_hourglass` and `compare_rewrites` read them, the way a user opens them after
`make demo`. Notebooks run in this process (runpy) and so reuse the test session; widgets come
from `NB_<WIDGET>` variables, their local fallback. Their numbers are checked against numpy
computed from the written `item_sids` table.
"""

from __future__ import annotations

import csv
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "amazon-office"
N_ITEMS = 200
L, M = 3, 16
STRATEGIES = ["topk(2)"]


def run_notebook(name: str, monkeypatch, **widgets: str) -> dict:
    for key, value in widgets.items():
        monkeypatch.setenv(f"NB_{key.upper()}", value)
    monkeypatch.chdir(ROOT)
    return runpy.run_path(str(ROOT / "notebooks" / f"{name}.py"), run_name="__main__")


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory):
    """run_pipeline on a slice of the sample; returns (output_root, item_sids as numpy)."""
    tmp = tmp_path_factory.mktemp("notebooks")
    lines = (SAMPLE / "items.jsonl").read_text().splitlines()[:N_ITEMS]
    keep = {json.loads(x)["item_id"] for x in lines}
    (tmp / "items.jsonl").write_text("\n".join(lines) + "\n")
    with open(SAMPLE / "interactions.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["item_id"] in keep]
    with open(tmp / "interactions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["user_id", "item_id", "position"])
        writer.writeheader()
        writer.writerows(rows)
    root = str(tmp / "tables")
    config = {"output_root": root, "steps": [
        {"stage": "ingest", "items_path": str(tmp / "items.jsonl"),
         "interactions_path": str(tmp / "interactions.csv"), "ts_column": "position"},
        {"stage": "embed_items", "fields": ["title"], "batch_size": 64},
        {"stage": "train_codebooks", "num_layers": L, "codebook_size": M, "kmeans_iters": 10},
        {"stage": "encode_items"},
    ]}
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    try:
        ns = run_notebook("run_pipeline", mp, config_file=str(tmp / "pipeline.yaml"),
                          output_root="", only="")
    finally:
        mp.undo()
    assert [r.stage for r in ns["results"]] == [s["stage"] for s in config["steps"]]
    tables = {t["table"]: t["rows"] for t in ns["tables"]}
    assert tables["items"] == N_ITEMS and tables["item_sids"] == N_ITEMS
    sids = spark.read.format("delta").load(f"{root}/item_sids").toPandas()
    codes = np.array(sids.sort_values("item_id")["codes"].tolist())
    assert codes.shape == (N_ITEMS, L)
    return root, codes, tmp


def test_explore_hourglass(pipeline, monkeypatch):
    root, codes, tmp = pipeline
    figures = tmp / "explore_figures"
    ns = run_notebook("explore_hourglass", monkeypatch, output_root=root, sid_table="item_sids",
                      strategy="", run_id="nb_explore", figures_dir=str(figures))
    summary = ns["summary"].set_index("layer")
    for layer in range(1, L + 1):
        counts = np.bincount(codes[:, layer - 1], minlength=M)
        p = counts[counts > 0] / counts.sum()
        assert summary.loc[layer, "entropy"] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-9)
        assert summary.loc[layer, "used_tokens"] == np.count_nonzero(counts)
    assert set(ns["hourglass"]) == {2}
    assert {p.stem for p in figures.glob("*.png")} == {"flow", "rank_frequency", "metric_bars",
                                                       "residual_norms"}
    drawn = ns["figures"]
    # Rank-frequency: one line per layer, the shares of its used tokens in descending order.
    lines = drawn["rank_frequency"].axes[0].get_lines()
    assert len(lines) == L
    for layer, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), token_shares(codes[:, layer]))
    # Figure 3: normalised entropy and utilization bars per layer.
    entropy_ax, _, _, util_ax = drawn["metric_bars"].axes
    np.testing.assert_allclose([b.get_height() for b in entropy_ax.patches],
                               [norm_entropy(codes[:, i]) for i in range(L)], rtol=1e-9)
    np.testing.assert_allclose([b.get_height() for b in util_ax.patches],
                               [np.unique(codes[:, i]).size / M for i in range(L)])


def token_shares(column: np.ndarray) -> np.ndarray:
    """Shares of the used tokens of one layer, most frequent first (numpy reference)."""
    counts = np.sort(np.bincount(column))[::-1]
    return counts[counts > 0] / column.size


def norm_entropy(column: np.ndarray) -> float:
    p = token_shares(column)
    return float(-(p * np.log(p)).sum() / np.log(M))


def test_compare_rewrites(spark, pipeline, monkeypatch):
    root, codes, tmp = pipeline
    figures = tmp / "compare_figures"
    ns = run_notebook("compare_rewrites", monkeypatch, output_root=root,
                      item_sids_table="item_sids", strategies=";".join(STRATEGIES),
                      resolve_collisions="true", figures_dir=str(figures))
    out = ns["outcomes"].set_index("strategy")
    assert list(out.index) == ["topk_2"]
    assert out.loc["topk_2", "items"] == N_ITEMS
    assert out.loc["topk_2", "tokens_removed"] == 2
    assert out.loc["topk_2", "collision_share_after"] == 0  # the suffix makes SIDs unique
    # independent reference: items whose layer-2 token is one of the 2 most frequent lose it
    counts = np.bincount(codes[:, 1], minlength=M)
    top2 = np.argsort(-counts, kind="stable")[:2]
    short = np.isin(codes[:, 1], top2)
    keys = np.where(short[:, None], codes * [1, 0, 1] - [0, 1, 0], codes)  # (c1, -1, c3)
    _, inverse, sizes = np.unique(np.array(keys), axis=0, return_inverse=True,
                                  return_counts=True)
    assert out.loc["topk_2", "collision_share_before"] == pytest.approx(
        (sizes[inverse.ravel()] > 1).mean())
    rw = (spark.read.format("delta").load(f"{root}/item_sids_rw")
          .where("strategy = 'topk_2'").toPandas())
    shortened = rw["tokens"].map(lambda t: not any(x.startswith("<b_") for x in t)).sum()
    assert shortened == int(short.sum())
    metrics = ns["per_layer"]
    assert set(metrics.index) == {"original", "rw_topk_2"}
    assert metrics.loc["original", ("norm_entropy", 1)] == pytest.approx(
        ns["data"].summary.query("run_id == 'original' and layer == 1")["norm_entropy"].item())
    assert {p.stem for p in figures.glob("*.png")} == {"metric_bars", "rank_frequency"}
    drawn = ns["figures"]
    # Side by side: the original run's bars and layer-2 curve equal the numpy reference.
    entropy_ax = drawn["metric_bars"].axes[0]
    bars = {c.get_label(): c for c in entropy_ax.containers}
    original = [b.get_height() for b in bars["original"]]
    np.testing.assert_allclose(original[:L], [norm_entropy(codes[:, i]) for i in range(L)],
                               rtol=1e-9)
    assert np.isnan(original[L:]).all()  # the suffix layer exists in rewritten SIDs only
    layer2 = {ln.get_label(): ln for ln in drawn["rank_frequency"].axes[1].get_lines()}
    np.testing.assert_allclose(layer2["original"].get_ydata(), token_shares(codes[:, 1]))
