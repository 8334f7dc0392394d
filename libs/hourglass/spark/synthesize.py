"""Synthetic item embeddings generated on the executors (`quant/synthetic.py` per block).

Rows come from block indices (`spark.range` of blocks → `mapInArrow`), so nothing is collected to
the driver and N can be 10^8 or more; each block is seeded by its index, so the frame is the same
for any number of partitions. Arrow batches are built straight from the float32 block (no
per-row Python objects), which keeps the generator off the critical path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

EMBEDDINGS_SCHEMA = "item_id string, embedding array<float>, model string"


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: N items of dimension `dim` in Zipf-sized Gaussian clusters."""

    num_items: int
    dim: int
    num_clusters: int
    zipf_exponent: float
    spread: float
    seed: int
    block_size: int
    normalize: bool
    id_prefix: str
    model: str  # the `model` column: names the generator and its parameters


def _generate_blocks(spec: SyntheticSpec
                     ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: batches of block indices → batches of embedding rows."""
    import numpy as np

    from hourglass.quant.synthetic import synthetic_block

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            for block in batch.column(0).to_numpy():
                ids, X = synthetic_block(int(block), spec.block_size, spec.num_items, spec.dim,
                                         spec.num_clusters, spec.zipf_exponent, spec.spread,
                                         spec.seed)
                if spec.normalize:
                    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
                offsets = np.arange(0, (len(ids) + 1) * spec.dim, spec.dim, dtype=np.int32)
                emb = pa.ListArray.from_arrays(offsets, pa.array(X.reshape(-1), pa.float32()))
                names = pa.array([f"{spec.id_prefix}{i}" for i in ids.tolist()], pa.string())
                model = pa.array([spec.model] * len(ids), pa.string())
                yield pa.RecordBatch.from_arrays([names, emb, model],
                                                 ["item_id", "embedding", "model"])

    return run


def synthetic_embeddings(spark: SparkSession, spec: SyntheticSpec, partitions: int = 0
                         ) -> DataFrame:
    """The `item_embeddings` rows of `spec`; `partitions` 0 picks a count from the cluster."""
    n_blocks = -(-spec.num_items // spec.block_size)
    parts = partitions or max(spark.sparkContext.defaultParallelism,
                              min(n_blocks, n_blocks // 16 + 1))
    blocks = spark.range(0, n_blocks, 1, numPartitions=min(parts, n_blocks))
    return blocks.mapInArrow(_generate_blocks(spec), EMBEDDINGS_SCHEMA)
