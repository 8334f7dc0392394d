"""Checkpoint selection by validation Recall@k: what the model is for, not its loss.

The validation loss keeps falling while retrieval has already peaked (and on a few thousand
users, a model trained several epochs overfits the items it saw most): the checkpoint worth
keeping is the one that ranks held-out items best. `RecallProbe` scores a fixed slice of this
rank's `valid` rows with the same trie-constrained beam search and catalog the evaluation uses
(`hourglass.decode.ranking`), so the figure it selects on is the evaluation's own metric on
the validation split. Items sharing a SID are ordered by item_id here (the trainer has no
interaction counts); the evaluation orders them by popularity, so for collision-heavy strategies
the two can differ slightly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hourglass.decode.ranking import Catalog, Ranker
from hourglass.train.layout import BEST_FILE

if TYPE_CHECKING:
    from hourglass.sft.tokenizer import QueryIds
    from hourglass.train.config import TrainConfig


class RecallProbe:
    """Hits@k over the given valid rows, for a model being trained."""

    def __init__(self, model: Any, tokenizer: Any, item_ids: Sequence[str],
                 item_tokens: Sequence[Sequence[str]], valid_rows: dict[str, list], k: int,
                 beam: int, max_seq_len: int, device: str = "cpu",
                 batch_users: int = 64, given_prefix: int = 0,
                 queries: QueryIds | None = None) -> None:
        catalog = Catalog.build(item_ids, item_tokens)
        longest = max((len(t) for t in item_tokens), default=0)
        self.ranker = Ranker(model, tokenizer, catalog, beam, max_seq_len - (longest + 1),
                             device, queries)
        self.model = model
        self.prompts = valid_rows["prompt_tokens"]
        self.queries = valid_rows["query"] if queries is not None else None
        self.targets = valid_rows["target_item_id"]
        self.given = ([list(t[:given_prefix]) for t in valid_rows["target_tokens"]]
                      if given_prefix else None)
        self.k = k
        self.batch_users = batch_users

    def __len__(self) -> int:
        return len(self.targets)

    def hits(self) -> int:
        """Targets found among the top k items; the model is in eval mode meanwhile."""
        import numpy as np

        was_training = self.model.training
        self.model.eval()
        found = 0
        try:
            for lo in range(0, len(self.targets), self.batch_users):
                hi = lo + self.batch_users
                ranked = self.ranker.rank(self.prompts[lo:hi], self.targets[lo:hi], self.k,
                                          given=self.given[lo:hi] if self.given else None,
                                          queries=self.queries[lo:hi] if self.queries else None)
                found += int(np.count_nonzero(ranked.ranks > 0))
        finally:
            self.model.train(was_training)
        return found


PROBE_SEED = 0  # the validation users are the same for every seed and recipe


@dataclass
class Best:
    """The best validation Recall so far, its step and weights (a CPU copy on every rank)."""

    step: int | None = None
    recall: float | None = None
    state: dict[str, Any] | None = None
    stale: int = 0  # checks since the last improvement

    @classmethod
    def load(cls, run_dir: Path) -> Best:
        """What an interrupted run had kept (its count of stale checks restarts at 0)."""
        import torch

        f = run_dir / BEST_FILE
        if not f.exists():
            return cls()
        rec = torch.load(f, map_location="cpu", weights_only=True)
        return cls(step=int(rec["step"]), recall=float(rec["recall"]), state=rec["state"])

    def offer(self, step: int, recall: float, model: Any, run_dir: Path, rank: int,
              patience: int) -> bool:
        """Keep `model`'s weights when `recall` beats the best (ties keep the earlier step);
        True when `patience` checks in a row did not."""
        import torch

        if self.recall is not None and recall <= self.recall:
            self.stale += 1
            return patience > 0 and self.stale >= patience
        self.step, self.recall, self.stale = step, recall, 0
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if rank == 0:
            tmp = run_dir / (BEST_FILE + ".tmp")
            torch.save({"step": step, "recall": recall, "state": self.state}, tmp)
            tmp.replace(run_dir / BEST_FILE)
        return False


def recall_probe(cfg: TrainConfig, model: Any, tokenizer: Any, sid_rows: dict[str, list],
                 valid_rows: dict[str, list], world: int, device: str,
                 queries: QueryIds | None = None) -> RecallProbe:
    """This rank's probe: a seeded sample of its valid rows, `recall_users` over all ranks."""
    rows = probe_rows(valid_rows, -(-cfg.recall_users // world))
    return RecallProbe(model, tokenizer, sid_rows["item_id"], sid_rows["tokens"], rows,
                       cfg.recall_k, cfg.recall_beam, cfg.max_seq_len, device,
                       given_prefix=cfg.given_prefix, queries=queries)


def probe_rows(valid_rows: dict[str, list], users: int) -> dict[str, list]:
    """A seeded sample of `users` valid rows, drawn over the rows ordered by user_id: the
    same users whatever the files' row order, so runs on rebuilt tables compare on one sample."""
    import numpy as np

    order = np.argsort(np.asarray(valid_rows["user_id"], dtype=object), kind="stable")
    pick = np.sort(order[np.random.default_rng(PROBE_SEED).permutation(len(order))[:users]])
    return {k: [v[i] for i in pick] for k, v in valid_rows.items()}
