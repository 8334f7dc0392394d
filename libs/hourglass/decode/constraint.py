"""The SID trie in the model's token ids: which tokens each beam may emit next, and where it goes.

`SidTrie` numbers tokens by its own sorted vocabulary; a model numbers them by its tokenizer.
This adapter maps edges once at load, so a decoding step is a few vectorized gathers: the
allowed tokens of node `n` are its children, plus `</s>` when the path to `n` is a whole SID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hourglass.rewrite.trie import SidTrie


class TrieConstraint:
    """A `SidTrie` whose edges are labelled with model token ids; node -1 means 'no SID'."""

    def __init__(self, trie: SidTrie, model_ids: Mapping[str, int], eos_id: int,
                 vocab_size: int) -> None:
        missing = [t for t in trie.vocab if t not in model_ids]
        if missing:
            raise ValueError(f"{len(missing)} SID tokens are not in the model vocabulary, e.g. "
                             f"{missing[:3]}: the model was trained on other SIDs")
        self.trie = trie
        self.eos_id = int(eos_id)
        self.vocab_size = int(vocab_size)
        self.model_of_trie = np.array([model_ids[t] for t in trie.vocab], dtype=np.int64)
        self.trie_of_model = np.full(vocab_size, -1, dtype=np.int64)
        self.trie_of_model[self.model_of_trie] = np.arange(len(self.model_of_trie))
        self.edge_model = self.model_of_trie[trie.edge_tokens.astype(np.int64)]
        self.offsets = trie.offsets.astype(np.int64)

    @property
    def max_depth(self) -> int:
        return self.trie.max_depth

    def allowed(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, token) pairs allowed after each node of `nodes`; rows with node -1 get none."""
        nodes = np.asarray(nodes, dtype=np.int64)
        ok = nodes >= 0
        safe = np.where(ok, nodes, 0)
        lo = self.offsets[safe]
        counts = np.where(ok, self.offsets[safe + 1] - lo, 0)
        rows = np.repeat(np.arange(len(nodes)), counts)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = self.edge_model[lo[rows] + within]
        term = np.flatnonzero(ok & self.trie.terminal[safe])
        return (np.concatenate([rows, term]),
                np.concatenate([cols, np.full(len(term), self.eos_id, dtype=np.int64)]))

    def advance(self, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Node after emitting `tokens` (model ids); -1 for an edge that does not exist."""
        tokens = np.asarray(tokens, dtype=np.int64)
        in_vocab = (tokens >= 0) & (tokens < self.vocab_size)
        trie_tokens = np.where(in_vocab, self.trie_of_model[np.where(in_vocab, tokens, 0)], -1)
        return self.trie.step(np.asarray(nodes, dtype=np.int64), trie_tokens)

    def is_valid(self, tokens: Sequence[int]) -> bool:
        """True when `tokens` (model ids, no `</s>`) spell a whole SID."""
        node = np.array([0], dtype=np.int64)
        for t in tokens:
            node = self.advance(node, np.array([t]))
            if node[0] < 0:
                return False
        return len(tokens) > 0 and bool(self.trie.terminal[node[0]])
