"""Leave-one-out windows of item ids, encoded as left-padded index arrays for an ID-based model.

The windows are those of `hourglass.sft.examples` (the generative model's definition): items
ordered by (ts, item_id), one window per position t >= 1 with the newest `history_max_items`
items before t as history; the last target is `test`, the second last `valid`, the rest
`train`. A baseline fed these windows sees exactly the supervision the SID model sees. In a
pipeline the rows come straight from `sft_examples`; `loo_windows` builds them without Spark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hourglass.sft.examples import MIN_INTERACTIONS, SPLITS, history_bounds, split_of

Window = tuple[str, str, tuple[str, ...], str]  # user_id, split, history, target_item_id
PAD = 0


def loo_windows(sequences: Mapping[str, Sequence[tuple[int, str]]], history_max_items: int,
                min_interactions: int = MIN_INTERACTIONS) -> list[Window]:
    """Every user's windows; `sequences` maps user_id → (ts, item_id) events in any order."""
    if min_interactions < MIN_INTERACTIONS:
        raise ValueError(f"min_interactions must be >= {MIN_INTERACTIONS}")
    out: list[Window] = []
    for user in sorted(sequences):
        items = [item for _, item in sorted(sequences[user])]
        n = len(items)
        if n < min_interactions:
            continue
        for t in range(1, n):
            lo, hi = history_bounds(t, history_max_items)
            out.append((user, split_of(t, n), tuple(items[lo:hi]), items[t]))
    return out


@dataclass(frozen=True)
class ItemIndex:
    """item_id ↔ row of the score matrix (0-based); model inputs use row + 1 (0 is padding)."""

    item_ids: tuple[str, ...]

    @classmethod
    def of(cls, item_ids: Iterable[str]) -> ItemIndex:
        return cls(tuple(sorted(set(item_ids))))

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}


@dataclass(frozen=True)
class EncodedWindows:
    """Windows of one split: `history` [N, H] input ids (left-padded with 0, newest last) and
    `target` [N] score-matrix rows."""

    user_ids: tuple[str, ...]
    history: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def take(self, idx: np.ndarray) -> EncodedWindows:
        return EncodedWindows(tuple(self.user_ids[i] for i in idx), self.history[idx],
                              self.target[idx])


def encode_windows(windows: Iterable[Window], index: ItemIndex, max_len: int,
                   split: str) -> EncodedWindows:
    """The windows of `split`; a history longer than `max_len` keeps its newest items. An item
    missing from `index` is an error: the catalog must cover every interaction."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = index.rows()
    users, hist, target = [], [], []
    for user, s, history, item in windows:
        if s != split:
            continue
        ids = [rows[h] + 1 for h in history[-max_len:]]
        hist.append([PAD] * (max_len - len(ids)) + ids)
        target.append(rows[item])
        users.append(user)
    return EncodedWindows(tuple(users), np.asarray(hist, dtype=np.int64).reshape(-1, max_len),
                   np.asarray(target, dtype=np.int64))
