"""SID rewriting strategies of paper §4 on plain arrays: the reference the Spark rewrite must match.

- `none()`: SID = (c1..cL).
- `drop_layer(l)`: remove layer l from every SID (§4.1 removes layer 2).
- `topk(K)`: rank layer-2 tokens by item count; items whose layer-2 token is among the top K
  lose it, all others keep it (§4.2, variable length).
- `topshare(p)`: like topk with K = the smallest number of top tokens covering share p of items.
- `topk_share(s)`: topk with K = round(s · M), at least 1 (K as a share of the codebook, so the
  paper's grid K = 20/200/400/600 of M = 4096 runs at any M: shares 0.005/0.049/0.098/0.146).
- `exchange(i,j)`: swap the tokens of layers i and j (Table 1's "Exchange Layer 1&2"). Tokens
  keep their layer tag and only their order changes: (c1, c2, c3) under exchange(1,2) becomes
  `<b_c2> <a_c1> <c_c3>`. A permutation, so it adds no collision and removes none.

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

KINDS = ("none", "drop_layer", "topk", "topshare", "topk_share", "exchange")
TOP_LAYER = 2  # the hourglass neck the top strategies thin out (paper §3.1)
_NUM = r"([0-9.eE+-]+)"
_SPEC = re.compile(rf"^\s*([a-z_]+?)\s*(?:\(\s*{_NUM}\s*(?:,\s*{_NUM}\s*)?\)"
                   rf"|_{_NUM}(?:_{_NUM})?)?\s*$")
_SHARE_KINDS = ("topshare", "topk_share")


@dataclass(frozen=True)
class Strategy:
    """One rewriting strategy; `name` (e.g. `topk_16`) is its key in every table and folder."""

    kind: str
    param: float | int | tuple[int, int] | None = None

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "exchange":
            i, j = self.layers
            return f"exchange_{i}_{j}"
        if self.kind in _SHARE_KINDS:
            return f"{self.kind}_{float(self.param)!r}"
        return f"{self.kind}_{int(self.param)}"

    @property
    def params(self) -> dict[str, float | int]:
        if self.kind == "exchange":
            i, j = self.layers
            return {"i": i, "j": j}
        key = {"drop_layer": "layer", "topk": "k", "topshare": "p",
               "topk_share": "share"}.get(self.kind)
        return {key: self.param} if key else {}

    @property
    def layers(self) -> tuple[int, int]:
        """The two 1-based layers an exchange swaps."""
        assert self.kind == "exchange" and isinstance(self.param, tuple)
        return int(self.param[0]), int(self.param[1])

    def top_k(self, codebook_size: int) -> int | None:
        """K of a topk or topk_share strategy at this M (None for the others)."""
        if self.kind == "topk":
            return int(self.param)
        if self.kind == "topk_share":
            return max(1, round(float(self.param) * codebook_size))
        return None

    def order(self, num_layers: int) -> list[int]:
        """0-based layers in the order the SID spells them (identity but for exchange)."""
        order = list(range(num_layers))
        if self.kind == "exchange":
            i, j = self.layers
            order[i - 1], order[j - 1] = order[j - 1], order[i - 1]
        return order

    def validate(self, num_layers: int | None = None, key: str = "strategies") -> None:
        """ConfigError naming `key` for an unknown kind or a parameter out of range."""
        require(self.kind in KINDS, key, f"unknown strategy {self.kind!r}; known: {KINDS}")
        if self.kind == "none":
            require(self.param is None, key, "'none' takes no parameter")
            return
        require(self.param is not None, key, f"{self.kind} needs a parameter")
        if self.kind == "exchange":
            self._validate_exchange(num_layers, key)
            return
        require(not isinstance(self.param, tuple), key, f"{self.kind} takes one parameter")
        if self.kind in _SHARE_KINDS:
            p = float(self.param)
            require(0.0 < p <= 1.0, key, f"{self.kind} share must be in (0, 1], got {p}")
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

    def _validate_exchange(self, num_layers: int | None, key: str) -> None:
        require(isinstance(self.param, tuple) and len(self.param) == 2, key,
                "exchange takes two layers, e.g. exchange(1,2)")
        i, j = self.param
        require(float(i).is_integer() and float(j).is_integer(), key,
                f"exchange takes integer layers, got {i}, {j}")
        require(int(i) >= 1 and int(j) >= 1, key, f"exchange layers are 1-based, got {i}, {j}")
        require(int(i) != int(j), key, f"exchange({int(i)},{int(j)}) swaps a layer with itself")
        if num_layers is not None:
            require(max(int(i), int(j)) <= num_layers, key,
                    f"exchange({int(i)},{int(j)}): layer {max(int(i), int(j))} out of range for "
                    f"SIDs of {num_layers} layers")


def none() -> Strategy:
    return Strategy("none")


def drop_layer(layer: int = TOP_LAYER) -> Strategy:
    return Strategy("drop_layer", layer)


def topk(k: int) -> Strategy:
    return Strategy("topk", k)


def topshare(p: float) -> Strategy:
    return Strategy("topshare", float(p))


def topk_share(share: float) -> Strategy:
    return Strategy("topk_share", float(share))


def exchange(i: int, j: int) -> Strategy:
    return Strategy("exchange", (int(i), int(j)))


def parse_strategy(spec: str, key: str = "strategies") -> Strategy:
    """`none`, `drop_layer(2)`/`drop_layer_2`, `topk(16)`/`topk_16`, `topshare(0.5)`,
    `topk_share(0.049)`, `exchange(1,2)`/`exchange_1_2` → Strategy."""
    m = _SPEC.match(spec or "")
    require(m is not None, key, f"cannot read strategy {spec!r}: use e.g. none, drop_layer(2), "
            "topk(16), topshare(0.5), topk_share(0.049), exchange(1,2)")
    kind = m.group(1)
    raws = [r for r in ((m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5)))
            if r is not None]
    require(kind in KINDS, key, f"unknown strategy {spec!r}; known: {', '.join(KINDS)}")
    values = []
    for raw in raws:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        require(np.isfinite(value), key, f"cannot read the parameter of {spec!r}")
        values.append(value if kind in _SHARE_KINDS or not value.is_integer() else int(value))
    param: float | int | tuple | None = None
    if kind == "exchange" or len(values) > 1:
        param = tuple(values) if values else None
    elif values:
        param = values[0]
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
    if strategy.kind not in ("topk", "topshare", "topk_share"):
        return np.zeros(0, dtype=np.int64)
    order = rank_tokens(codes, counts, codebook_size)
    k = strategy.top_k(codebook_size)
    if k is not None:
        return np.sort(order[: min(k, codebook_size)])
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
    if strategy.kind in ("none", "exchange"):
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
    K = min(n_removed, M) if strategy.kind not in ("none", "exchange") else 0
    return float(M**L + K * (M ** (L - 2) - M ** (L - 1)))


def rewrite_tokens(codes: np.ndarray, strategy: Strategy, removed: np.ndarray) -> list[list[str]]:
    """Tagged tokens of each row of `codes` (N, L) after the strategy, before collision suffixes."""
    codes = np.asarray(codes, dtype=np.int64)
    L = codes.shape[1]
    keep = np.ones(codes.shape, dtype=bool)
    if strategy.kind == "drop_layer":
        keep[:, int(strategy.param) - 1] = False
    elif strategy.kind in ("topk", "topshare", "topk_share"):
        keep[:, TOP_LAYER - 1] = ~np.isin(codes[:, TOP_LAYER - 1], removed)
    order = strategy.order(L)
    return [[token(j + 1, int(row[j])) for j in order if k[j]]
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
