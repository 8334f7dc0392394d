"""Synthetic `item_sids` and `interactions` at any size, generated in Spark SQL from row ids.

For benchmarks and scale runs of the stages after encoding, where what matters is the shape of
the data, not how it was made: a long-tailed layer 2 (the hourglass the rewrite strategies act
on), Zipf item popularity and user sequences whose lengths follow a 5-core Amazon-like tail.
Every value is a hash of the row id and a salt, so a frame is the same for any partitioning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

ITEM_FORMAT = "item%010d"
USER_FORMAT = "user%010d"
_RESOLUTION = 1 << 30


def _uniform(col: str, seed: int, salt: int) -> Column:
    """Uniform in [0, 1) from a hash of `col`, the seed and a salt."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.col(col), F.lit(seed), F.lit(salt))
    return F.pmod(h, F.lit(_RESOLUTION)) / float(_RESOLUTION)


def synthetic_item_sids(spark: SparkSession, num_items: int, num_codes: int,
                        num_layers: int = 3, seed: int = 0, partitions: int = 0) -> DataFrame:
    """`item_sids` rows: layers uniform except layer 2, whose code is M^(u³) − 1 (a power law:
    a few tokens hold most items, as in the paper's Fig. 2); norms fall with the layer."""
    from pyspark.sql import functions as F

    M = num_codes

    def code(layer: int) -> Column:
        u = _uniform("id", seed, layer)
        if layer == 2:
            skewed = F.floor(F.pow(F.lit(float(M)), u * u * u)) - 1
            return F.least(skewed, F.lit(M - 1)).cast("int")
        return F.least(F.floor(u * M), F.lit(M - 1)).cast("int")

    rows = spark.range(0, num_items, 1, partitions or None)
    return rows.select(
        F.format_string(ITEM_FORMAT, "id").alias("item_id"),
        F.array(*[code(layer) for layer in range(1, num_layers + 1)]).alias("codes"),
        F.array(*[(_uniform("id", seed, 100 + layer) / layer).cast("float")
                  for layer in range(1, num_layers + 1)]).alias("residual_norms"),
        F.lit(f"synthetic-M{M}-L{num_layers}-seed{seed}").alias("codebook_id"),
    )


def synthetic_interactions(spark: SparkSession, num_items: int, num_users: int,
                           min_length: int = 5, mean_length: float = 9.0,
                           max_length: int = 200, seed: int = 0,
                           partitions: int = 0) -> DataFrame:
    """`interactions` rows: user lengths `min_length` + an exponential tail (mean
    `mean_length`, capped at `max_length`), items drawn with Zipf(1) popularity (rank
    ⌊N^u⌋ − 1) and scattered over the ids by a multiplicative permutation; ts = position."""
    import math

    from pyspark.sql import functions as F

    if mean_length <= min_length:
        raise ValueError("mean_length must exceed min_length")
    step = _coprime_step(num_items)
    tail = -F.log(F.lit(1.0) - _uniform("id", seed, 1)) * (mean_length - min_length)
    length = F.least(F.lit(min_length) + F.floor(tail + 0.5), F.lit(max_length)).cast("int")
    users = spark.range(0, num_users, 1, partitions or None).select(
        F.col("id").alias("user"), length.alias("n"))
    events = users.select("user", F.explode(F.sequence(F.lit(0), F.col("n") - 1)).alias("pos"))
    key = F.col("user") * max_length + F.col("pos")
    u = _uniform("k", seed, 2)
    rank = F.least(F.floor(F.exp(u * math.log(num_items))) - 1, F.lit(num_items - 1))
    item = F.pmod(rank.cast("bigint") * step, F.lit(num_items))
    return events.select(key.alias("k"), "user", "pos").select(
        F.format_string(USER_FORMAT, "user").alias("user_id"),
        F.format_string(ITEM_FORMAT, item).alias("item_id"),
        F.col("pos").cast("bigint").alias("ts"),
    )


def _coprime_step(n: int) -> int:
    """A step near 0.618·n that is coprime to n, so rank → rank·step mod n is a permutation."""
    import math

    step = max(1, int(n * 0.6180339887))
    while math.gcd(step, n) != 1:
        step += 1
    return step
