"""The stats stage's plan arithmetic, by hand: shape sources, which plan runs, what is carried."""

from __future__ import annotations

import pytest

from hourglass.errors import ConfigError
from hourglass.stats.plan import (
    FIXED,
    REWRITTEN,
    Shape,
    StatsPlan,
    codebooks_root,
    packable,
    plan_stats,
    resolve_shape,
    scan_ranges,
)


def never() -> tuple[int | None, int | None]:
    raise AssertionError("the full-table pass ran although config or codebook said")


def test_config_then_codebook_then_the_table():
    assert resolve_shape(3, 256, (4, 64), never) == Shape(3, 256, "config")
    assert resolve_shape(0, 0, (4, 64), never) == Shape(4, 64, "codebook")
    assert resolve_shape(3, 0, (4, 64), never) == Shape(3, 64, "codebook")
    # M from the config names the source even when L came from the codebook
    assert resolve_shape(0, 128, (4, 64), never) == Shape(4, 128, "config")
    # inferred M is the largest code + 1 (40 → 41), at least 2
    assert resolve_shape(0, 0, None, lambda: (3, 40)) == Shape(3, 41, "inferred")
    assert resolve_shape(0, 0, None, lambda: (2, 0)) == Shape(2, 2, "inferred")
    assert resolve_shape(5, 0, None, lambda: (3, 40)) == Shape(5, 41, "inferred")
    assert resolve_shape(0, 32, None, lambda: (3, 40)) == Shape(3, 32, "config")


def test_a_shape_that_cannot_be_known_names_the_key():
    with pytest.raises(ConfigError, match="'num_layers'"):
        resolve_shape(0, 0, None, None)  # rewritten input, no codebook manifest
    with pytest.raises(ConfigError, match="'num_codes'"):
        resolve_shape(3, 0, None, None)
    with pytest.raises(ConfigError, match="cannot infer"):
        resolve_shape(0, 0, None, lambda: (None, None))  # an empty table


def test_packable_below_two_to_the_62():
    assert packable(FIXED, 256, 7)          # 2^56
    assert not packable(FIXED, 256, 8)      # 2^64
    assert packable(FIXED, 2, 61)           # 2^61
    assert not packable(FIXED, 2, 62)       # 2^62 itself does not fit
    assert not packable(REWRITTEN, 16, 3)   # variable length never packs


def test_plans_name_their_columns_and_plan():
    assert plan_stats(FIXED, Shape(3, 256, "config")) == StatsPlan(
        kind=FIXED, shape=Shape(3, 256, "config"), id_col="codebook_id",
        carried=("codebook_id",), scanned=True)
    assert plan_stats(FIXED, Shape(8, 256, "codebook")).scanned is False
    assert plan_stats(REWRITTEN, Shape(3, 16, "codebook")) == StatsPlan(
        kind=REWRITTEN, shape=Shape(3, 16, "codebook"), id_col="source_codebook_id",
        carried=("source_codebook_id", "strategy"), scanned=False)


def test_scan_ranges_and_codebooks_root():
    assert scan_ranges(8, 3) == 8
    assert scan_ranges(2, 17) == 17
    assert codebooks_root("/books", "/out") == "/books"
    assert codebooks_root("", "/out/") == "/out/codebooks"
    assert codebooks_root("", "") == ""
