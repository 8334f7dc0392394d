"""Normalise `item_sids` or `item_sids_rw` rows into one shape, with a reason for bad rows.

Both inputs become (item_id, keys ARRAY<BIGINT>, norms ARRAY<DOUBLE>, _reason): one key per
token, key = layer · 2^32 + code, in SID order. The layer is the position for fixed-length codes
and the tag letter for rewritten tokens (so `<a_3> <c_9>` is layers 1 and 3, and the suffix
`<d_k>` is layer L+1). Keys keep the layer inside the value, so grouping by a key array groups
by SID and a slice of it is a prefix. Rows whose `_reason` is set go to quarantine, not to the
statistics; the original columns ride along as the quarantine payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hourglass.stats.plan import FIXED, REWRITTEN

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PAYLOAD = {FIXED: ["item_id", "codes", "residual_norms"], REWRITTEN: ["item_id", "tokens"]}
KEY_SHIFT = 32
TOKEN_PATTERN = r"^<[a-z]_[0-9]{1,9}>$"  # sid_tokens' grammar; ≤ 9 digits fits an INT


def detect_kind(df: DataFrame) -> str:
    """`fixed` for a `codes` column, `rewritten` for a `tokens` column."""
    cols = set(df.columns)
    if "codes" in cols:
        return FIXED
    if "tokens" in cols:
        return REWRITTEN
    raise ValueError(f"input has neither `codes` nor `tokens`: columns {sorted(cols)}")


def key_layer(key: Column) -> Column:
    from pyspark.sql import functions as F

    return F.shiftright(key, KEY_SHIFT).cast("int")


def key_code(key: Column) -> Column:
    from pyspark.sql import functions as F

    return key.bitwiseAND(F.lit((1 << KEY_SHIFT) - 1)).cast("int")


def any_of(conds: list[Column]) -> Column:
    """OR of column conditions (false for none): the codegen'd form of `exists` when the
    array's length is known."""
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a | b, conds, F.lit(False))


def make_key(layer: Column, code: Column) -> Column:
    from pyspark.sql import functions as F

    return F.shiftleft(layer.cast("bigint"), KEY_SHIFT) + code.cast("bigint")


def infer_fixed_shape(df: DataFrame) -> tuple[int | None, int | None]:
    """(longest `codes`, largest code) of a fixed-length table; None where there are none."""
    from pyspark.sql import functions as F

    row = df.agg(F.max(F.size("codes")).alias("L"),
                 F.max(F.array_max("codes")).alias("top")).collect()[0]
    L = row["L"] if row["L"] is not None and row["L"] >= 1 else None
    return L, row["top"]


def _missing_id() -> Column:
    from pyspark.sql import functions as F

    return F.col("item_id").isNull() | (F.trim(F.col("item_id")) == "")


def fixed_frame(df: DataFrame, L: int, M: int, extra: tuple[str, ...] = ()) -> DataFrame:
    """Validate and key a fixed-length table (codes and residual norms of length L).

    L is known, so every per-element test and the keys are spelled out element by element:
    plain expressions Spark compiles into the stage's generated code, where the array lambdas
    (`exists`, `transform`) would evaluate row by row outside it. `extra` columns are passed
    through (e.g. the codebook id, for lineage).
    """
    from pyspark.sql import functions as F

    codes, norms = F.col("codes"), F.col("residual_norms")
    code = [F.try_element_at(codes, F.lit(i + 1)) for i in range(L)]
    norm = [F.try_element_at(norms, F.lit(i + 1)) for i in range(L)]
    reason = (
        F.when(_missing_id(), F.lit("missing item_id"))
        .when(codes.isNull(), F.lit("null codes"))
        .when(F.size(codes) != L,
              F.concat(F.lit("codes length "), F.size(codes).cast("string"),
                       F.lit(f", expected {L}")))
        .when(any_of([c.isNull() for c in code]), F.lit("null code"))
        .when(any_of([(c < 0) | (c >= M) for c in code]), F.lit(f"code outside [0, {M})"))
        .when(norms.isNull(), F.lit("null residual_norms"))
        .when(F.size(norms) != L,
              F.concat(F.lit("residual_norms length "), F.size(norms).cast("string"),
                       F.lit(f", expected {L}")))
        .when(any_of([x.isNull() | F.isnan(x) | (x < 0) | (x == float("inf")) for x in norm]),
              F.lit("residual norm null, NaN, infinite or negative"))
    )
    # keys only for valid rows (as in rewritten_frame): Spark may evaluate an expression over
    # the keys before the filter on `_reason`, and an invalid code must not reach `key_code`
    keys = F.when(reason.isNull(),
                  F.array(*[make_key(F.lit(i + 1), c) for i, c in enumerate(code)]))
    return df.select(
        "item_id", keys.alias("keys"), F.array(*[x.cast("double") for x in norm]).alias("norms"),
        reason.alias("_reason"), codes, norms, *extra,
    )


def rewritten_frame(df: DataFrame, L: int, M: int, extra: tuple[str, ...] = ()) -> DataFrame:
    """Validate and key rewritten SIDs: layer from the tag, tags strictly increasing."""
    from pyspark.sql import functions as F

    toks = F.col("tokens")
    layers = F.transform(toks, lambda t: F.ascii(F.substring(t, 2, 1)) - 96)
    codes = F.transform(toks, lambda t: F.regexp_extract(t, r"_([0-9]+)>$", 1).try_cast("int"))
    df = df.select("item_id", toks, layers.alias("_layers"), codes.alias("_codes"), *extra)
    lay, cod = F.col("_layers"), F.col("_codes")
    reason = (
        F.when(_missing_id(), F.lit("missing item_id"))
        .when(toks.isNull() | (F.size(toks) == 0), F.lit("empty tokens"))
        .when(F.exists(toks, lambda t: t.isNull() | ~t.rlike(TOKEN_PATTERN)),
              F.lit("unparseable token"))
        .when(F.exists(lay, lambda x: x > L + 1),
              F.lit(f"layer tag beyond the suffix layer {L + 1}"))
        .when(lay != F.array_sort(F.array_distinct(lay)),
              F.lit("layer tags not strictly increasing"))
        .when(F.exists(F.zip_with(lay, cod, lambda x, c: (x <= L) & (c >= M)), lambda b: b),
              F.lit(f"code outside [0, {M})"))
    )
    keys = F.when(reason.isNull(), F.zip_with(lay, cod, make_key))
    return df.select(
        "item_id", keys.alias("keys"), F.lit(None).cast("array<double>").alias("norms"),
        reason.alias("_reason"), toks, *extra,
    )
