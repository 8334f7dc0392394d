"""Stage `encode_items`: `item_embeddings` + codebook artifact → `item_sids` and quarantine.

The artifact is loaded (hash verified) and its D compared with the table's before anything is
written. Where the table is a path on a mounted filesystem (`parquet_scan.plan_files`), each task
reads its share of the pinned version's Parquet files with pyarrow, validates the rows in numpy
by the SQL rules of `spark.encode.invalid_reason`, and encodes the valid ones: the JVM never
decodes the 4·D-byte embeddings, which cost more than the kernel at small M. `item_sids` is
written in one commit; the commit's metrics say how many rows it wrote, and the input count
comes from the Delta log's statistics. Only when the two differ are the files the tasks found
bad rows in read again for them (no kernel); SQL makes their reasons and payloads. Elsewhere
(catalog tables, object stores, `direct_read: false`) one Spark pass validates in SQL, encodes,
and persists its narrow output for the quarantine. Either way this stage's quarantine slice is
replaced in one commit (emptied when there are none) and `input = encoded + quarantined` is
checked.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.quant.artifact import load_artifact, resolve_artifact
from hourglass.spark.encode import (
    READ_COLUMNS,
    STAGE,
    check_dim,
    encode_rows,
    file_passes,
    pack_sids,
    quarantine_frame,
    score_rows,
    sids_frame,
)
from hourglass.spark.parquet_scan import FilePlan, plan_files
from hourglass.spark.progress import names_its_jobs, next_step
from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.session import persist_catalog
from hourglass.spark.tables import lineage, read_table, write_table
from hourglass.table_refs import table_ref

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class EncodeItemsConfig(StageConfig):
    """Encode every item embedding into a semantic ID with a trained codebook artifact.

    Keys:
        embeddings_table: input table of item embeddings
        sids_table: output table of item SIDs (codes, residual norms, codebook_id)
        codebook_path: an artifact folder, or a codebooks root holding LATEST; empty:
            <output_root>/codebooks
        device: cpu (numpy kernel on the executors), cuda[:n] or auto (torch kernel)
        chunk_rows: rows per GEMM; 0: sized to the cache
        blas_threads: BLAS threads per Python worker; 0: the task's cores
        dim_check_rows: rows checked against the codebook's D before anything is written
        direct_read: embeddings read from the table's Parquet files with pyarrow in the task
            where that gives exactly Spark's rows (a path table on a mounted filesystem, no
            deletion vectors or column mapping); else, or when false, read through Spark
    """

    embeddings_table: str = "item_embeddings"
    sids_table: str = "item_sids"
    # artifact folder, or a codebooks root holding LATEST; empty: <output_root>/codebooks
    codebook_path: str = ""
    device: str = "cpu"  # cpu (numpy kernel) | cuda | auto (torch kernel on the executors)
    chunk_rows: int = 0  # rows per GEMM; 0 sizes it to the cache
    blas_threads: int = 0  # BLAS threads per Python worker; 0 = the task's cores
    dim_check_rows: int = 10_000
    direct_read: bool = True

    def validate(self) -> None:
        require(self.device == "auto" or self.device.startswith(("cpu", "cuda")), "device",
                "must be cpu, cuda[:n] or auto")
        require(self.chunk_rows >= 0, "chunk_rows", "must be >= 0")
        require(self.blas_threads >= 0, "blas_threads", "must be >= 0")
        require(self.dim_check_rows >= 1, "dim_check_rows", "must be >= 1")
        require(bool(self.codebook_path or self.output_root), "codebook_path",
                "is required when output_root is empty (catalog tables)")

    def artifact_path(self) -> str:
        return resolve_artifact(self.codebook_path or table_ref(self.output_root, "codebooks"))


@dataclasses.dataclass(frozen=True)
class EncodeCounts:
    """Row accounting of one encode run; `check` enforces input = encoded + quarantined."""

    rows_in: int
    encoded: int
    quarantined: int
    codebook_id: str
    dim: int
    reasons: dict[str, int]

    def check(self, hint: str | None = None) -> None:
        if self.rows_in != self.encoded + self.quarantined:
            raise RuntimeError(f"encode rows do not reconcile: {self}"
                               + (f"; {hint}" if hint else ""))


@names_its_jobs
def run(spark: SparkSession, cfg: EncodeItemsConfig) -> EncodeCounts:
    """Write `item_sids` and the `encode_items` quarantine slice; reconcile counts."""
    from pyspark.sql import functions as F

    art = load_artifact(cfg.artifact_path())
    L = int(art.manifest["L"])
    src = read_table(spark, cfg.ref(cfg.embeddings_table))
    files = (plan_files(spark, src.ref, src.version,
                        [c for c in READ_COLUMNS if c in src.df.columns], pack=False)
             if cfg.direct_read else FilePlan([], "direct_read is off"))
    next_step(spark, STAGE, f"check D={art.dim} of {src.ref} v{src.version} against codebook "
              f"{art.codebook_id[:12]}")
    check_dim(src.df, art, cfg.dim_check_rows, files)  # raises before any write
    record = lineage("encode_items", cfg.config_hash(), {src.ref: src.version},
                     codebook_id=art.codebook_id)
    bc = spark.sparkContext.broadcast(art)
    sids_ref, q_ref = cfg.ref(cfg.sids_table), cfg.ref(cfg.quarantine_table)
    encoded = None
    if files.reason:
        log.info("encode_items: reading %s through Spark: %s", src.ref, files.reason)
        # the pass's narrow output (no embedding), kept for the quarantine's bad rows
        encoded = persist_catalog(encode_rows(score_rows(src.df, art.dim), bc, art.codebook_id,
                                              L, cfg.device, cfg.chunk_rows or None,
                                              cfg.blas_threads or None))
        sids = sids_frame(encoded, art.codebook_id, L)
    else:  # nothing persisted: the files holding bad rows, if any, are read again for them
        passes = file_passes(files, src.df, bc, art.codebook_id, art.dim, L, cfg.device,
                             cfg.chunk_rows or None, cfg.blas_threads or None)
        sids = pack_sids(passes.valid, art.codebook_id, L)
    how = ("through Spark" if files.reason
           else f"{len(files.units)} file units in {len(files.tasks)} tasks")
    try:
        next_step(spark, STAGE, f"encode to {L}-token SIDs and write {sids_ref} (reading {how})")
        sids_commit = write_table(sids, sids_ref, record)
        next_step(spark, STAGE, f"count {src.ref} v{src.version}")
        rows_in = src.df.count()  # answered from the Delta log's file statistics when present
        missing = rows_in - sids_commit.rows
        bad = (quarantine_frame(encoded) if encoded is not None
               else quarantine_frame(passes.refused(missing)))
        if missing == 0:  # no bad row: empty the slice without reading them
            bad = bad.where(F.lit(False))
        next_step(spark, STAGE, f"quarantine {missing} bad rows in {q_ref}")
        q_commit = write_quarantine(bad, q_ref, STAGE, record)
    finally:
        if encoded is not None:
            encoded.unpersist()
        bc.unpersist()
    reasons: dict[str, int] = {}
    if q_commit.rows:
        q = read_table(spark, q_ref, q_commit.version).df.where(F.col("stage") == STAGE)
        reasons = {r["reason"]: int(r["count"]) for r in q.groupBy("reason").count().collect()}
    counts = EncodeCounts(
        rows_in=rows_in, encoded=sids_commit.rows,
        quarantined=q_commit.rows, codebook_id=art.codebook_id, dim=art.dim,
        reasons=dict(sorted(reasons.items())),
    )
    log.info("encode_items: %s", counts)
    counts.check(None if files.reason else "the rows were read from the Parquet files: set "
                 "direct_read: false and report this")
    return counts
