"""Stage `synthesize`: long-tail clustered synthetic embeddings generated inside Spark.

Rows are produced by executors from block indices (`spark.range` of blocks → `mapInArrow`), so
nothing is collected to the driver and N can be 10^8 or more; each block is seeded by its index,
so the table is identical for any number of partitions. Arrow batches are built directly from
the float32 block (no per-row Python objects), which keeps the generator off the critical path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.spark.tables import lineage, read_table, write_table

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

SCHEMA = "item_id string, embedding array<float>, model string"


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

    def model_name(self) -> str:
        return (f"synthetic(zipf={self.zipf_exponent},spread={self.spread},"
                f"clusters={self.num_clusters},seed={self.seed},norm={self.normalize})")


def generate_blocks(cfg: SynthesizeConfig):
    """The mapInArrow function: batches of block indices → batches of embedding rows."""
    import numpy as np

    from hourglass.quant.synthetic import synthetic_block

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            for block in batch.column(0).to_numpy():
                ids, X = synthetic_block(int(block), cfg.block_size, cfg.num_items, cfg.dim,
                                         cfg.num_clusters, cfg.zipf_exponent, cfg.spread,
                                         cfg.seed)
                if cfg.normalize:
                    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
                offsets = np.arange(0, (len(ids) + 1) * cfg.dim, cfg.dim, dtype=np.int32)
                emb = pa.ListArray.from_arrays(offsets, pa.array(X.reshape(-1), pa.float32()))
                names = pa.array([f"{cfg.id_prefix}{i}" for i in ids.tolist()], pa.string())
                model = pa.array([cfg.model_name()] * len(ids), pa.string())
                yield pa.RecordBatch.from_arrays([names, emb, model],
                                                 ["item_id", "embedding", "model"])

    return run


@dataclasses.dataclass(frozen=True)
class SynthesizeResult:
    table: str
    rows: int
    dim: int
    version: int


def run(spark: SparkSession, cfg: SynthesizeConfig) -> SynthesizeResult:
    n_blocks = -(-cfg.num_items // cfg.block_size)
    parts = cfg.partitions or max(spark.sparkContext.defaultParallelism,
                                  min(n_blocks, n_blocks // 16 + 1))
    blocks = spark.range(0, n_blocks, 1, numPartitions=min(parts, n_blocks))
    out = blocks.mapInArrow(generate_blocks(cfg), SCHEMA)
    ref = cfg.ref(cfg.embeddings_table)
    version = write_table(out, ref, lineage("synthesize", cfg.config_hash(), {},
                                            model=cfg.model_name()))
    rows = read_table(spark, ref, version).df.count()
    if rows != cfg.num_items:
        raise RuntimeError(f"synthesize wrote {rows} rows, expected {cfg.num_items}")
    result = SynthesizeResult(table=ref, rows=rows, dim=cfg.dim, version=version)
    log.info("synthesize: %s", result)
    return result
