"""Synthetic embeddings from Spark equal the pure generator's blocks, for any partitioning."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.quant.synthetic import synthetic_block, zipf_weights
from hourglass.spark.tables import read_table
from hourglass.stages.synthesize import SynthesizeConfig, run

pytestmark = pytest.mark.spark


def _load(spark, ref):
    pdf = read_table(spark, ref).df.toPandas()
    pdf["n"] = pdf["item_id"].str.removeprefix("syn_").astype(int)
    pdf = pdf.sort_values("n")
    return pdf["n"].to_numpy(), np.stack(pdf["embedding"].to_numpy()).astype(np.float32)


def test_matches_generator_and_ignores_partitioning(spark, table_root):
    base = {"num_items": 2500, "dim": 16, "num_clusters": 20, "block_size": 700, "seed": 7,
            "normalize": False, "output_root": table_root}
    r1 = run(spark, SynthesizeConfig.from_dict({**base, "partitions": 1,
                                                "embeddings_table": "e1"}))
    r3 = run(spark, SynthesizeConfig.from_dict({**base, "partitions": 3,
                                                "embeddings_table": "e3"}))
    assert r1.rows == r3.rows == 2500
    ids1, X1 = _load(spark, r1.table)
    ids3, X3 = _load(spark, r3.table)
    np.testing.assert_array_equal(ids1, np.arange(2500))
    np.testing.assert_array_equal(X1, X3)
    expect = np.vstack([synthetic_block(b, 700, 2500, 16, 20, 1.1, 0.35, 7)[1] for b in range(4)])
    np.testing.assert_array_equal(X1, expect)


def test_normalised_and_long_tailed(spark, table_root):
    cfg = SynthesizeConfig.from_dict({"num_items": 4000, "dim": 8, "num_clusters": 50,
                                      "zipf_exponent": 1.2, "spread": 0.0, "seed": 1,
                                      "output_root": table_root})
    _, X = _load(spark, run(spark, cfg).table)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    # spread 0: every row is its (unit) centre, so cluster sizes are the distinct-row counts
    _, sizes = np.unique(X.round(5), axis=0, return_counts=True)
    sizes = np.sort(sizes)[::-1]
    expected_top = zipf_weights(50, 1.2)[0] * 4000
    assert abs(sizes[0] - expected_top) < 4 * np.sqrt(expected_top)
    assert sizes[0] > 10 * sizes[-1]


def test_synthetic_sids_and_interactions_have_the_promised_shape(spark):
    """Partitioning-independent; layer 2 long-tailed; Zipf(1) popularity over valid ids;
    user lengths within [min, max] with about the asked mean."""
    from hourglass.spark.synthetic_tables import synthetic_interactions, synthetic_item_sids

    one = synthetic_item_sids(spark, 20_000, 64, partitions=1).toPandas()
    three = synthetic_item_sids(spark, 20_000, 64, partitions=3).toPandas()
    assert one.equals(three) and one["item_id"].is_unique
    codes = np.stack(one["codes"].to_numpy())
    assert codes.min() >= 0 and codes.max() <= 63
    share = [np.bincount(codes[:, layer], minlength=64).max() / 20_000 for layer in range(3)]
    # top-1 share of layer 2 is P(64^(u^3) < 2) = (1/6)^(1/3) ≈ 0.55; layers 1, 3 ≈ 1/64
    assert 0.52 < share[1] < 0.58 and share[0] < 0.03 and share[2] < 0.03

    inter = synthetic_interactions(spark, 1000, 3000, min_length=5, mean_length=9.0,
                                   max_length=50, partitions=2).toPandas()
    again = synthetic_interactions(spark, 1000, 3000, min_length=5, mean_length=9.0,
                                   max_length=50, partitions=5).toPandas()
    assert inter.sort_values(["user_id", "ts"], ignore_index=True).equals(
        again.sort_values(["user_id", "ts"], ignore_index=True))
    lengths = inter.groupby("user_id")["ts"].agg(["count", "max"])
    assert (lengths["count"] == lengths["max"] + 1).all()  # ts = 0..n-1 per user
    assert lengths["count"].between(5, 50).all() and 8.6 < lengths["count"].mean() < 9.4
    assert inter["user_id"].nunique() == 3000
    item_no = inter["item_id"].str.removeprefix("item").astype(int)
    assert item_no.between(0, 999).all()
    counts = np.sort(item_no.value_counts().to_numpy())[::-1]
    # Zipf(1) over 1000 ranks: the top item holds log(2)/log(1000) ≈ 10% of events
    assert 0.08 < counts[0] / len(inter) < 0.12
