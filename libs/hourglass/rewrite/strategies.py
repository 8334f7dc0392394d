"""SID rewriting strategies of paper §4 on plain arrays: the reference the Spark rewrite must match.

- `none()`: SID = (c1..cL).
- `drop_layer(l)`: remove layer l from every SID (§4.1 removes layer 2).
- `topk(K)`: rank layer-2 tokens by item count; items whose layer-2 token is among the top K
  lose it, all others keep it (§4.2, variable length).
- `topshare(p)`: like topk with K = the smallest number of top tokens covering share p of items.

Ranking of layer-2 tokens, used by both top strategies: count descending, ties broken by the
lower code first; codes no item uses (count 0) rank after all used ones, again by code. So the
removed set is a pure function of the counts, identical on the driver and in tests.

Collisions (several items on one rewritten SID) are resolved, unless kept, by appending a suffix
token of the layer after the last one (`<d_0>`, `<d_1>` … for L=3) to *every* item of a colliding
SID, in order of item popularity (descending) then item_id (ascending). Suffix tokens never
occur elsewhere, so suffixed SIDs are unique and never equal an unsuffixed SID.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hourglass.config import require
from hourglass.sid_tokens import suffix_token, token

KINDS = ("none", "drop_layer", "topk", "topshare")
TOP_LAYER = 2  # the hourglass neck the top strategies thin out (paper §3.1)
_NUM = r"([0-9.eE+-]+)"
_SPEC = re.compile(rf"^\s*([a-z_]+?)\s*(?:\(\s*{_NUM}\s*\)|_{_NUM})?\s*$")


@dataclass(frozen=True)
class Strategy:
    """One rewriting strategy; `name` (e.g. `topk_16`) is its key in every table and folder."""

    kind: str
    param: float | int | None = None

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "topshare":
            return f"topshare_{float(self.param)!r}"
        return f"{self.kind}_{int(self.param)}"

    @property
    def params(self) -> dict[str, float | int]:
        key = {"drop_layer": "layer", "topk": "k", "topshare": "p"}.get(self.kind)
        return {key: self.param} if key else {}

    def validate(self, num_layers: int | None = None, key: str = "strategies") -> None:
        """ConfigError naming `key` for an unknown kind or a parameter out of range."""
        require(self.kind in KINDS, key, f"unknown strategy {self.kind!r}; known: {KINDS}")
        if self.kind == "none":
            require(self.param is None, key, "'none' takes no parameter")
            return
        require(self.param is not None, key, f"{self.kind} needs a parameter")
        if self.kind == "topshare":
            p = float(self.param)
            require(0.0 < p <= 1.0, key, f"topshare p must be in (0, 1], got {p}")
        else:
            require(float(self.param).is_integer(), key,
                    f"{self.kind} takes an integer, got {self.param}")
        if self.kind == "topk":
            require(int(self.param) >= 0, key, f"topk K must be >= 0, got {self.param}")
        if self.kind == "drop_layer":
            require(int(self.param) >= 1, key, f"drop_layer layer is 1-based, got {self.param}")
        if num_layers is not None:
            layer = int(self.param) if self.kind == "drop_layer" else TOP_LAYER
            require(num_layers >= 2 and 1 <= layer <= num_layers, key,
                    f"{self.name}: layer {layer} out of range for SIDs of {num_layers} layers "
                    "(a rewrite needs at least 2 layers)")


def none() -> Strategy:
    return Strategy("none")


def drop_layer(layer: int = TOP_LAYER) -> Strategy:
    return Strategy("drop_layer", layer)


def topk(k: int) -> Strategy:
    return Strategy("topk", k)


def topshare(p: float) -> Strategy:
    return Strategy("topshare", float(p))


def parse_strategy(spec: str, key: str = "strategies") -> Strategy:
    """`none`, `drop_layer(2)`/`drop_layer_2`, `topk(16)`/`topk_16`, `topshare(0.5)` → Strategy."""
    m = _SPEC.match(spec or "")
    require(m is not None, key, f"cannot read strategy {spec!r}: use e.g. none, drop_layer(2), "
            "topk(16), topshare(0.5)")
    kind, raw = m.group(1), m.group(2) or m.group(3)
    require(kind in KINDS, key, f"unknown strategy {spec!r}; known: {', '.join(KINDS)}")
    param: float | int | None = None
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        require(np.isfinite(value), key, f"cannot read the parameter of {spec!r}")
        param = value if kind == "topshare" or not value.is_integer() else int(value)
    strategy = Strategy(kind, param)
    strategy.validate(key=key)
    return strategy


def rank_tokens(codes: np.ndarray, counts: np.ndarray, codebook_size: int) -> np.ndarray:
    """All codes 0..M-1 by count descending, ties (and unused codes) by code ascending."""
    full = np.zeros(codebook_size, dtype=np.int64)
    np.add.at(full, np.asarray(codes, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    return np.lexsort((np.arange(codebook_size), -full))


def removed_tokens(strategy: Strategy, codes: np.ndarray, counts: np.ndarray,
                   codebook_size: int) -> np.ndarray:
    """Layer-2 codes whose items lose their layer-2 token (empty for none and drop_layer)."""
    if strategy.kind not in ("topk", "topshare"):
        return np.zeros(0, dtype=np.int64)
    order = rank_tokens(codes, counts, codebook_size)
    if strategy.kind == "topk":
        return np.sort(order[: min(int(strategy.param), codebook_size)])
    full = np.zeros(codebook_size, dtype=np.int64)
    np.add.at(full, np.asarray(codes, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    covered = np.cumsum(full[order])
    share = Fraction(repr(float(strategy.param)))  # exact: 0.3 means 3/10, not 0.2999…
    need = share.numerator * int(covered[-1]) if len(covered) else 0
    reached = covered * share.denominator >= need  # exact integer comparison
    k = int(np.argmax(reached)) + 1 if need > 0 else 0
    return np.sort(order[:k])


def capacity_definition(strategy: Strategy, codebook_size: int, num_layers: int,
                        n_removed: int = 0) -> float:
    """Distinct SIDs the rewritten scheme can express, counted from the definition.

    topk/topshare: the (M − K) kept layer-2 codes give full SIDs, (M − K)·M^(L−1), and all
    shortened SIDs share one space of M^(L−1) whatever the removed code was (when K > 0).
    """
    M, L = codebook_size, num_layers
    if strategy.kind == "none":
        return float(M**L)
    if strategy.kind == "drop_layer":
        return float(M ** (L - 1))
    K = min(n_removed, M)
    return float((M - K) * M ** (L - 1) + (M ** (L - 1) if K > 0 else 0))


def capacity_formula(strategy: Strategy, codebook_size: int, num_layers: int,
                     n_removed: int = 0) -> float:
    """The paper's figures: M^L, M^(L−1) for a dropped layer, M^L + K(M^(L−2) − M^(L−1))."""
    M, L = codebook_size, num_layers
    if strategy.kind == "drop_layer":
        return float(M ** (L - 1))
    K = min(n_removed, M) if strategy.kind != "none" else 0
    return float(M**L + K * (M ** (L - 2) - M ** (L - 1)))


def rewrite_tokens(codes: np.ndarray, strategy: Strategy, removed: np.ndarray) -> list[list[str]]:
    """Tagged tokens of each row of `codes` (N, L) after the strategy, before collision suffixes."""
    codes = np.asarray(codes, dtype=np.int64)
    L = codes.shape[1]
    keep = np.ones(codes.shape, dtype=bool)
    if strategy.kind == "drop_layer":
        keep[:, int(strategy.param) - 1] = False
    elif strategy.kind in ("topk", "topshare"):
        keep[:, TOP_LAYER - 1] = ~np.isin(codes[:, TOP_LAYER - 1], removed)
    return [[token(j + 1, int(row[j])) for j in range(L) if k[j]]
            for row, k in zip(codes, keep, strict=True)]


def resolve_collisions(sids: Sequence[Sequence[str]], item_ids: Sequence[str],
                       popularity: Sequence[int] | None, num_layers: int) -> list[list[str]]:
    """Append `<d_i>` to every item of a colliding SID, i by popularity desc then item_id."""
    pop = list(popularity) if popularity is not None else [0] * len(sids)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, sid in enumerate(sids):
        groups.setdefault(tuple(sid), []).append(i)
    out = [list(s) for s in sids]
    for members in groups.values():
        if len(members) > 1:
            members.sort(key=lambda i: (-pop[i], item_ids[i]))
            for rank, i in enumerate(members):
                out[i].append(suffix_token(rank, num_layers))
    return out


def collision_share(sids: Sequence[Sequence[str]]) -> float:
    """Share of items whose SID is shared with at least one other item."""
    if not sids:
        return 0.0
    counts = Counter(tuple(s) for s in sids)
    return sum(c for c in counts.values() if c > 1) / len(sids)


def rewrite_sids(codes: np.ndarray, item_ids: Sequence[str], strategy: Strategy,
                 codebook_size: int, popularity: Sequence[int] | None = None,
                 keep_collisions: bool = False) -> list[list[str]]:
    """The whole rewrite of a small in-memory table: strategy, then collision suffixes."""
    codes = np.asarray(codes, dtype=np.int64)
    strategy.validate(codes.shape[1])
    values, counts = np.unique(codes[:, TOP_LAYER - 1], return_counts=True)
    removed = removed_tokens(strategy, values, counts, codebook_size)
    sids = rewrite_tokens(codes, strategy, removed)
    if keep_collisions:
        return sids
    return resolve_collisions(sids, item_ids, popularity, codes.shape[1])
