"""Leave-one-out SFT examples of one user, in plain Python: the definition the Spark build matches.

A user's interactions, ordered by (ts, item_id), give one example per position `t >= 1`: the
history is the items before `t` (the newest `history_max_items` of them), the target item `t`.
The last position is `test`, the second last `valid`, all earlier ones `train` (sliding
windows). A user with fewer than `min_interactions` (>= 3: one test, one valid, one history
item) cannot be split and yields nothing; the caller counts and reports such users.

`train_stride` s > 1 keeps only every s-th train window, counted back from the last train
position: with s = `history_max_items` consecutive kept windows share one item, so every train
item after the first is still inside a kept window, once, and a loss on every history item
(`sft_train` `loss_on: all_items`) still teaches each of them while an epoch is s times shorter.
The targets of dropped windows are then history only; the caller counts them.
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


def keeps_train_window(position: int, length: int, train_stride: int) -> bool:
    """Whether the train window of `position` is kept under `train_stride` (valid/test always)."""
    return split_of(position, length) != "train" or (length - 3 - position) % train_stride == 0


def history_bounds(position: int, history_max_items: int) -> tuple[int, int]:
    """[start, stop) of the history of `position`: the newest `history_max_items` before it."""
    return max(0, position - history_max_items), position


def user_examples(user_id: str, events: Sequence[tuple[int, str]],
                  sids: Mapping[str, Sequence[str]], history_max_items: int,
                  min_interactions: int = MIN_INTERACTIONS,
                  train_stride: int = 1) -> list[SftExample]:
    """The examples of one user; `events` are (ts, item_id) in any order, every item in `sids`."""
    if min_interactions < MIN_INTERACTIONS:
        raise ValueError(f"min_interactions must be >= {MIN_INTERACTIONS}")
    if not 1 <= train_stride <= history_max_items:
        raise ValueError(f"train_stride must be in [1, history_max_items], got {train_stride}")
    items = [item for _, item in sorted(events)]
    n = len(items)
    if n < min_interactions:
        return []
    out = []
    for t in range(1, n):
        if not keeps_train_window(t, n, train_stride):
            continue
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
