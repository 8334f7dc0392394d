"""Stage `synthesize`: long-tail clustered synthetic embeddings generated inside Spark
(`spark/synthesize.py`), written as `item_embeddings`; the same seed writes the same table for
any number of partitions."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.spark.synthesize import SyntheticSpec, synthetic_embeddings
from hourglass.spark.tables import lineage, write_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class SynthesizeConfig(StageConfig):
    """N items of dimension `dim` in Zipf-sized Gaussian clusters (see quant/synthetic.py).

    Keys:
        num_items: how many synthetic item embeddings to write
        dim: embedding dimension D
        num_clusters: Gaussian clusters the items are drawn from
        zipf_exponent: skew of the cluster sizes (0: equal sizes)
        spread: standard deviation of items around their cluster centre
        seed: random seed (the same seed writes the same table)
        block_size: items generated per block on the executors
        partitions: partitions of the generated table; 0: automatic
        normalize: scale every embedding to unit length
        id_prefix: prefix of the generated item ids
        embeddings_table: output table of item embeddings
    """

    num_items: int = 100_000
    dim: int = 128
    num_clusters: int = 1000
    zipf_exponent: float = 1.1
    spread: float = 0.35
    seed: int = 0
    block_size: int = 8192
    partitions: int = 0
    normalize: bool = True
    id_prefix: str = "syn_"
    embeddings_table: str = "item_embeddings"

    def validate(self) -> None:
        require(self.num_items > 0, "num_items", "must be positive")
        require(self.dim > 0, "dim", "must be positive")
        require(self.num_clusters > 0, "num_clusters", "must be positive")
        require(self.zipf_exponent >= 0, "zipf_exponent", "must be >= 0")
        require(self.spread >= 0, "spread", "must be >= 0")
        require(self.block_size > 0, "block_size", "must be positive")
        require(self.partitions >= 0, "partitions", "must be >= 0 (0 = automatic)")

    def spec(self) -> SyntheticSpec:
        return SyntheticSpec(
            num_items=self.num_items, dim=self.dim, num_clusters=self.num_clusters,
            zipf_exponent=self.zipf_exponent, spread=self.spread, seed=self.seed,
            block_size=self.block_size, normalize=self.normalize, id_prefix=self.id_prefix,
            model=self.model_name())

    def model_name(self) -> str:
        return (f"synthetic(zipf={self.zipf_exponent},spread={self.spread},"
                f"clusters={self.num_clusters},seed={self.seed},norm={self.normalize})")


@dataclasses.dataclass(frozen=True)
class SynthesizeResult:
    table: str
    rows: int
    dim: int
    version: int


def run(spark: SparkSession, cfg: SynthesizeConfig) -> SynthesizeResult:
    out = synthetic_embeddings(spark, cfg.spec(), cfg.partitions)
    ref = cfg.ref(cfg.embeddings_table)
    commit = write_table(out, ref, lineage("synthesize", cfg.config_hash(), {},
                                           model=cfg.model_name()))
    rows, version = commit.rows, commit.version
    if rows != cfg.num_items:
        raise RuntimeError(f"synthesize wrote {rows} rows, expected {cfg.num_items}")
    result = SynthesizeResult(table=ref, rows=rows, dim=cfg.dim, version=version)
    log.info("synthesize: %s", result)
    return result
