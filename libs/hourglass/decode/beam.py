"""Batched beam search over SIDs, constrained by the trie or free (to count invalid SIDs, Fig. 5).

All users of a batch decode in lockstep: each step scores every (beam, token) pair, masks what
the trie forbids, and keeps the `beam` best per user. A beam that emitted `</s>` is finished and
competes for its slot with its score frozen, so the result is the `beam` best hypotheses found.
Constrained, every candidate follows a trie edge or is `</s>` on a whole SID, so an invalid SID
cannot come out; and when `beam` >= the number of SIDs nothing is ever pruned, so the search is
exact (the tests check both against brute force).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hourglass.decode.constraint import TrieConstraint


class StepModel(Protocol):
    """Next-token log-probabilities with whatever cache the model keeps between steps."""

    def start(self, prompts: Sequence[Sequence[int]], beam: int) -> Any:
        """Log-probs [U, V] after each prompt; prepares `beam` rows per user for `advance`."""

    def advance(self, origin: Any, tokens: Any) -> Any:
        """Log-probs [U·beam, V] after appending `tokens` to rows `origin` (indices into the
        previous U·beam rows)."""


@dataclass(frozen=True)
class BeamOutput:
    """Per user, `beam` hypotheses best first: tokens (-1 padded, `</s>` included), scores
    (sum of log-probs; -inf for an empty slot) and whether `</s>` was emitted."""

    tokens: np.ndarray
    scores: np.ndarray
    finished: np.ndarray

    def sequence(self, u: int, b: int, eos_id: int) -> list[int]:
        """The SID tokens of one hypothesis (without `</s>` and padding)."""
        out = []
        for t in self.tokens[u, b]:
            if t < 0 or t == eos_id:
                break
            out.append(int(t))
        return out


def beam_search(model: StepModel, prompts: Sequence[Sequence[int]], beam: int, max_len: int,
                eos_id: int, pad_id: int, constraint: TrieConstraint | None = None,
                start_nodes: np.ndarray | None = None) -> BeamOutput:
    """Decode at most `max_len` SID tokens plus `</s>` per hypothesis.

    A free hypothesis that has not emitted `</s>` after `max_len + 1` tokens stays unfinished:
    an overlong SID, invalid by definition. `start_nodes` (one trie node per prompt, default
    the root) continues each user's SID from a prefix its prompt already ends with.
    """
    import torch

    U, B = len(prompts), beam
    logp = model.start(prompts, B).float()
    V = logp.shape[-1]
    logp = logp[:, None, :].expand(U, B, V)
    score = torch.full((U, B), float("-inf"))
    score[:, 0] = 0.0
    finished = torch.zeros((U, B), dtype=torch.bool)
    tokens = torch.full((U, B, max_len + 1), -1, dtype=torch.long)
    nodes = (np.zeros(U * B, dtype=np.int64) if start_nodes is None
             else np.repeat(np.asarray(start_nodes, dtype=np.int64), B))
    user_base = (torch.arange(U) * B)[:, None]
    for t in range(max_len + 1):
        cand = score[:, :, None] + logp
        if constraint is not None:
            rows, cols = constraint.allowed(nodes)
            allowed = torch.zeros((U * B, V), dtype=torch.bool)
            allowed[torch.from_numpy(rows), torch.from_numpy(cols)] = True
            cand = cand.masked_fill(~allowed.view(U, B, V), float("-inf"))
        cand = cand.masked_fill(finished[:, :, None], float("-inf"))
        carried = torch.where(finished, score, torch.full_like(score, float("-inf")))
        cand[:, :, pad_id] = torch.maximum(cand[:, :, pad_id], carried)
        top, idx = cand.view(U, B * V).topk(B, dim=1)
        origin, tok = idx // V, idx % V
        was_done = finished.gather(1, origin)
        dead = torch.isinf(top)
        finished = was_done | (tok == eos_id) | dead
        score = top
        tokens = tokens.gather(1, origin[:, :, None].expand(-1, -1, max_len + 1)).clone()
        tokens[:, :, t] = torch.where(was_done | dead, torch.full_like(tok, -1), tok)
        flat_origin = (user_base + origin).reshape(-1)
        if constraint is not None:
            moved = (~(was_done | dead) & (tok != eos_id)).reshape(-1).numpy()
            nodes = nodes[flat_origin.numpy()]
            nodes = np.where(moved, constraint.advance(nodes, tok.reshape(-1).numpy()), -1)
        if bool(finished.all()) or t == max_len:
            break
        logp = model.advance(flat_origin, tok.reshape(-1)).float().view(U, B, V)
    return BeamOutput(tokens=tokens.numpy(), scores=score.numpy(), finished=finished.numpy())
