"""How the stats stage measures one SID table: its shape, the columns it carries, which plan runs.

Pure arithmetic on what the stage has read (the input kind, the config's L and M, a codebook
manifest's), so every choice is tested without Spark and the stage only conducts. Two plans
compute the same tables: the two scans of numpy blocks, for fixed-length SIDs that pack into one
BIGINT (`spark.stats.scan`), and the row plan for everything else (`spark.stats.rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from hourglass.errors import ConfigError
from hourglass.table_refs import table_ref

FIXED = "fixed"
REWRITTEN = "rewritten"
PACK_LIMIT = 1 << 62  # a packed SID Σ c_l·M^(L−l) must stay a non-negative BIGINT

ID_COLUMN = {FIXED: "codebook_id", REWRITTEN: "source_codebook_id"}


class Shape(NamedTuple):
    """L and M of the codes measured, and where M came from (the summary's `m_source`)."""

    L: int
    M: int
    m_source: str  # config, codebook or inferred


class StatsPlan(NamedTuple):
    """What the stage reads and which plan computes the statistics."""

    kind: str  # fixed or rewritten
    shape: Shape
    id_col: str  # the column naming the codebook the SIDs came from
    carried: tuple[str, ...]  # columns kept beside the keys (lineage, the rewrite's strategy)
    scanned: bool  # the two-scan plan; else the row plan


def codebooks_root(configured: str, output_root: str) -> str:
    """Where the codebook manifests are: `configured`, else `<output_root>/codebooks`, else ""
    (no manifest to read)."""
    return configured or (table_ref(output_root, "codebooks") if output_root else "")


def resolve_shape(num_layers: int, num_codes: int, book: tuple[int, int] | None,
                  infer: Callable[[], tuple[int | None, int | None]] | None) -> Shape:
    """Config wins, then the codebook manifest (`book`, its (L, M)), then `infer()` → (longest
    SID, largest code), a full pass over the table, so called last.

    `infer` is None for rewritten input, whose table cannot tell L and M.
    """
    if num_layers and num_codes:
        return Shape(num_layers, num_codes, "config")
    if book:
        return Shape(num_layers or book[0], num_codes or book[1],
                     "config" if num_codes else "codebook")
    if infer is None:
        hint = "is required for rewritten input when the codebook artifact is not found"
        raise ConfigError(f"config key '{'num_layers' if not num_layers else 'num_codes'}': "
                          f"{hint}")
    L, top = infer()
    if (not num_layers and not L) or (not num_codes and top is None):
        raise ConfigError("config key 'num_codes': cannot infer L/M from an input without codes")
    L = num_layers or int(L)
    if num_codes:
        return Shape(L, num_codes, "config")
    return Shape(L, max(int(top) + 1, 2), "inferred")


def packable(input_kind: str, M: int, L: int) -> bool:
    """Fixed-length SIDs whose packed integer fits a BIGINT (M^L < 2^62)."""
    return input_kind == FIXED and M**L < PACK_LIMIT


def carried_columns(kind: str) -> tuple[str, ...]:
    """The codebook id column, and for rewritten SIDs the strategy that wrote them."""
    return (ID_COLUMN[kind],) if kind == FIXED else (ID_COLUMN[kind], "strategy")


def plan_stats(kind: str, shape: Shape) -> StatsPlan:
    """The plan for `kind` SIDs of `shape`: the two scans where the SIDs pack, else rows."""
    return StatsPlan(kind=kind, shape=shape, id_col=ID_COLUMN[kind],
                     carried=carried_columns(kind), scanned=packable(kind, shape.M, shape.L))


def scan_ranges(default_parallelism: int, tasks: int) -> int:
    """Ranges the scans split their blocks into for the reduce side: one per core at least, one
    per read task when the read has more."""
    return max(default_parallelism, tasks)
