"""From a fine-tuned model and a user's history to the rank of the held-out item.

Generated SIDs become items through the catalog of one strategy. A SID several items share
(drop_layer without collision suffixes) expands to all of them, most popular first, so a model
is never credited for a guess the SID cannot tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hourglass.decode.beam import BeamOutput, beam_search
from hourglass.decode.constraint import TrieConstraint
from hourglass.decode.stepper import CausalLMStepper
from hourglass.rewrite.trie import SidTrie
from hourglass.sft.format import frame_prompt
from hourglass.sft.tokenizer import QueryIds, TokenIds


@dataclass(frozen=True)
class Catalog:
    """The SIDs of one strategy and the items behind each (popularity desc, then item_id)."""

    trie: SidTrie
    sid_items: dict[tuple[str, ...], list[str]]

    @classmethod
    def build(cls, item_ids: Sequence[str], tokens: Sequence[Sequence[str]],
              popularity: Mapping[str, int] | None = None) -> Catalog:
        pop = popularity or {}
        groups: dict[tuple[str, ...], list[str]] = {}
        for item, toks in zip(item_ids, tokens, strict=True):
            groups.setdefault(tuple(toks), []).append(item)
        for items in groups.values():
            items.sort(key=lambda i: (-pop.get(i, 0), i))
        return cls(trie=SidTrie.build(groups.keys()), sid_items=groups)


@dataclass(frozen=True)
class Ranked:
    """Per user: 1-based rank of the target among the first `max_k` items (0 = not there), and
    the invalid share of the free decoder's top-k SIDs for each k (None when not measured)."""

    ranks: np.ndarray
    invalid: np.ndarray | None


class Ranker:
    """Constrained (and optionally free) beam search for batches of users; with `queries` (a
    model fine-tuned with a query prompt mode) each prompt opens with its user's query."""

    def __init__(self, model: Any, tokenizer: Any, catalog: Catalog, beam: int,
                 max_prompt_len: int, device: str = "cpu",
                 queries: QueryIds | None = None) -> None:
        self.ids = TokenIds(tokenizer)
        self.queries = queries
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.constraint = TrieConstraint(catalog.trie, self.ids.vocab, self.ids.special.eos,
                                         vocab_size)
        self.catalog = catalog
        self.vocab = catalog.trie.vocab
        self.stepper = CausalLMStepper(model, self.ids.special.pad, device)
        self.beam = beam
        self.max_prompt_len = max_prompt_len

    def prompts(self, prompt_tokens: Sequence[Sequence[str]],
                queries: Sequence[str | None] | None = None) -> list[list[int]]:
        """Framed prompts; `queries` (one text per prompt) is required exactly when the model
        was trained with queries."""
        sp = self.ids.special
        if (queries is None) != (self.queries is None):
            raise ValueError("this model's prompts " + ("need a query each" if queries is None
                                                        else "have no query"))
        texts = queries if queries is not None else [None] * len(prompt_tokens)
        return [frame_prompt(self.ids.ids(p), sp.bos, sp.sep, self.max_prompt_len,
                             self.queries.ids(q) if self.queries is not None else ())
                for p, q in zip(prompt_tokens, texts, strict=True)]

    def decode(self, prompts: list[list[int]], constrained: bool,
               given: Sequence[Sequence[int]] | None = None) -> BeamOutput:
        """Beam search after each prompt; with `given` (model ids of each user's SID prefix,
        already at the end of its prompt) the search continues from that prefix's trie node."""
        sp = self.ids.special
        depth, start = self.constraint.max_depth, None
        if given is not None:
            depth -= min((len(g) for g in given), default=0)
            start = np.array([self._node_of(g) for g in given], dtype=np.int64)
        return beam_search(self.stepper, prompts, self.beam, depth, sp.eos, sp.pad,
                           self.constraint if constrained else None,
                           start if constrained else None)

    def _node_of(self, prefix: Sequence[int]) -> int:
        node = np.zeros(1, dtype=np.int64)
        for t in prefix:
            node = self.constraint.advance(node, np.array([t]))
        return int(node[0])

    def sids(self, out: BeamOutput, u: int, given: Sequence[int] = ()
             ) -> list[tuple[tuple[str, ...], float]]:
        """User `u`'s whole SIDs of a constrained decode, best first, with their log-probs
        (each after the `given` prefix, in model ids, when the search continued one)."""
        found = []
        for b in range(out.scores.shape[1]):
            if out.finished[u, b] and np.isfinite(out.scores[u, b]):
                seq = [*given, *out.sequence(u, b, self.ids.special.eos)]
                trie_ids = self.constraint.trie_of_model[seq]
                found.append((tuple(self.vocab[i] for i in trie_ids), float(out.scores[u, b])))
        return found

    def items(self, out: BeamOutput, u: int, max_k: int) -> list[str]:
        """User `u`'s first `max_k` items: those of each SID in turn, most popular first."""
        return self.items_of(self.sids(out, u), max_k)

    def items_of(self, sids: Sequence[tuple[tuple[str, ...], float]], max_k: int) -> list[str]:
        """The first `max_k` items behind `sids` (as `sids` gives them), most popular first."""
        items: list[str] = []
        seen: set[str] = set()
        for key, _ in sids:
            for item in self.catalog.sid_items.get(key, ()):
                if item not in seen:
                    seen.add(item)
                    items.append(item)
            if len(items) >= max_k:
                break
        return items[:max_k]

    def invalid_shares(self, out: BeamOutput, ks: Sequence[int],
                       given: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """[U, len(ks)]: share of the top-k free hypotheses that are not a whole SID (after the
        user's `given` prefix, when the search continued one)."""
        eos = self.ids.special.eos
        U, B = out.scores.shape
        valid = np.zeros((U, B), dtype=bool)
        for u in range(U):
            head = list(given[u]) if given is not None else []
            for b in range(B):
                valid[u, b] = (out.finished[u, b] and np.isfinite(out.scores[u, b])
                               and self.constraint.is_valid([*head, *out.sequence(u, b, eos)]))
        return np.stack([1.0 - valid[:, :min(k, B)].mean(axis=1) for k in ks], axis=1)

    def rank(self, prompt_tokens: Sequence[Sequence[str]], targets: Sequence[str],
             max_k: int, invalid_ks: Sequence[int] | None = None,
             given: Sequence[Sequence[str]] | None = None,
             queries: Sequence[str | None] | None = None) -> Ranked:
        """Rank each user's target among the items of the best SIDs. `given` (each user's first
        target tokens, Table 1's "Given Layer 1") is appended to the prompt and the search only
        completes the SID: a diagnostic that sees part of the answer, not a retrieval result.
        `queries`: each user's query, for a model trained with a query prompt mode."""
        prompts = self.prompts(prompt_tokens, queries)
        given_ids = None
        if given is not None:
            given_ids = [self.ids.ids(g) for g in given]
            prompts = [[*p, *g] for p, g in zip(prompts, given_ids, strict=True)]
        out = self.decode(prompts, constrained=True, given=given_ids)
        ranks = np.zeros(len(targets), dtype=np.int32)
        for u, target in enumerate(targets):
            items = self.items_of(self.sids(out, u, given_ids[u] if given_ids else ()), max_k)
            ranks[u] = items.index(target) + 1 if target in items else 0
        invalid = None
        if invalid_ks:
            free = self.decode(prompts, constrained=False, given=given_ids)
            invalid = self.invalid_shares(free, invalid_ks, given_ids)
        return Ranked(ranks=ranks, invalid=invalid)
