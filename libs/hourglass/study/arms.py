"""The rows of the paper's tables as fine-tunes: a SID strategy, a loss and a given prefix.

Table 1 (why the hourglass hurts): the base model split by the target's layer-2 token into head
and tail users, exchange(1,2), and exchange(1,2) with the first token of the swapped SID given.
Table 2 (the fixes): base, focal and MiLe losses, drop_layer(2) and the top@K grid. The paper's
K = 20/200/400/600 of M = 4096 become shares of M (`topk_share`), so the grid runs at any M.
"""

from __future__ import annotations

from dataclasses import dataclass

from hourglass.evaluation.labels import given_label
from hourglass.rewrite.strategies import parse_strategy

# the paper's K grid as shares of M = 4096: 20, 200, 400, 600 tokens
PAPER_M = 4096
PAPER_K = (20, 200, 400, 600)
K_SHARES = tuple(round(k / PAPER_M, 4) for k in PAPER_K)


@dataclass(frozen=True)
class Arm:
    """One fine-tuned model per seed: what it trains on and how."""

    name: str  # the row's key in tables and cache files
    strategy: str
    loss: str = "ce"
    given_prefix: int = 0
    title: str = ""

    @property
    def strategy_name(self) -> str:
        return parse_strategy(self.strategy).name

    @property
    def eval_label(self) -> str:
        """The `strategy` column its evaluation writes (`<strategy>+given_<n>` when given)."""
        return given_label(self.strategy_name, self.given_prefix)

    @property
    def diagnostic(self) -> bool:
        """True when the model sees part of the answer: never a retrieval result."""
        return self.given_prefix > 0

    def label(self, codebook_size: int) -> str:
        """The row as a person reads it, with the K a share stands for at this M."""
        s = parse_strategy(self.strategy)
        k = s.top_k(codebook_size)
        if s.kind == "topk_share":
            return f"Remove layer-2 top@{k} (share {float(s.param):g} of M={codebook_size})"
        return self.title or self.name


BASE = Arm("base", "none", title="Base (none)")
EXCHANGE = Arm("exchange_1_2", "exchange(1,2)", title="Exchange layer 1&2")
EXCHANGE_GIVEN = Arm("exchange_1_2_given_1", "exchange(1,2)", given_prefix=1,
                     title="Exchange layer 1&2 + given layer 1 (diagnostic: sees the first "
                           "target token)")
FOCAL = Arm("focal", "none", loss="focal", title="Focal loss (Lin et al. 2017)")
MILE = Arm("mile", "none", loss="mile", title="MiLe loss (Su et al. 2024)")
DROP = Arm("drop_layer_2", "drop_layer(2)", title="Remove layer 2")


def topk_arms(shares: tuple[float, ...] = K_SHARES) -> list[Arm]:
    return [Arm(f"top_share_{s:g}", f"topk_share({s:g})") for s in shares]


def table1_arms() -> list[Arm]:
    return [BASE, EXCHANGE, EXCHANGE_GIVEN]


def table2_arms(shares: tuple[float, ...] = K_SHARES) -> list[Arm]:
    return [BASE, FOCAL, MILE, DROP, *topk_arms(shares)]


def all_arms(shares: tuple[float, ...] = K_SHARES) -> list[Arm]:
    """Every arm once, Table 1's first (the base is shared by both tables)."""
    seen: dict[str, Arm] = {}
    for arm in [*table1_arms(), *table2_arms(shares)]:
        seen.setdefault(arm.name, arm)
    return list(seen.values())


def strategies(arms: list[Arm]) -> list[str]:
    """The distinct SID strategies the arms train on, in order (rewritten and built once)."""
    return list(dict.fromkeys(a.strategy for a in arms))
