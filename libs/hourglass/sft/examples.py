"""Leave-one-out SFT examples of one user, in plain Python: the definition the Spark build matches.

A user's interactions, ordered by (ts, item_id), give one example per position `t >= 1`: the
history is the items before `t` (the newest `history_max_items` of them), the target item `t`.
The last position is `test`, the second last `valid`, all earlier ones `train` (sliding
windows). A user with fewer than `min_interactions` (>= 3: one test, one valid, one history
item) cannot be split and yields nothing; the caller counts and reports such users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hourglass.sft.format import join_history

SPLITS = ("train", "valid", "test")
MIN_INTERACTIONS = 3


@dataclass(frozen=True)
class SftExample:
    """One row of `sft_examples` (without the strategy column)."""

    user_id: str
    split: str
    history: tuple[str, ...]
    target_item_id: str
    prompt_tokens: tuple[str, ...]
    target_tokens: tuple[str, ...]


def split_of(position: int, length: int) -> str:
    """Leave-one-out split of 0-based `position` in a sequence of `length` interactions."""
    if position == length - 1:
        return "test"
    if position == length - 2:
        return "valid"
    return "train"


def history_bounds(position: int, history_max_items: int) -> tuple[int, int]:
    """[start, stop) of the history of `position`: the newest `history_max_items` before it."""
    return max(0, position - history_max_items), position


def user_examples(user_id: str, events: Sequence[tuple[int, str]],
                  sids: Mapping[str, Sequence[str]], history_max_items: int,
                  min_interactions: int = MIN_INTERACTIONS) -> list[SftExample]:
    """All examples of one user; `events` are (ts, item_id) in any order, every item in `sids`."""
    if min_interactions < MIN_INTERACTIONS:
        raise ValueError(f"min_interactions must be >= {MIN_INTERACTIONS}")
    items = [item for _, item in sorted(events)]
    n = len(items)
    if n < min_interactions:
        return []
    out = []
    for t in range(1, n):
        lo, hi = history_bounds(t, history_max_items)
        history = tuple(items[lo:hi])
        out.append(SftExample(
            user_id=user_id,
            split=split_of(t, n),
            history=history,
            target_item_id=items[t],
            prompt_tokens=tuple(join_history([sids[h] for h in history])),
            target_tokens=tuple(sids[items[t]]),
        ))
    return out
