"""Trie-constrained beam search against brute force, on random fixed- and variable-length tries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass.decode.beam import beam_search
from hourglass.decode.constraint import TrieConstraint
from hourglass.rewrite.trie import SidTrie
from hourglass.sid_tokens import token

PAD, EOS, JUNK = 0, 1, 3  # ids 0, 1 special; SID tokens from 2; then JUNK non-SID tokens


class HashModel:
    """A fake LM: log-probs are a seeded random function of the whole token sequence."""

    def __init__(self, vocab_size: int, seed: int) -> None:
        self.V, self.seed = vocab_size, seed
        self.rows: list[list[int]] = []

    def logp(self, seq: list[int]) -> np.ndarray:
        rng = np.random.default_rng([self.seed, len(seq), *seq])
        x = rng.normal(size=self.V) * 2.0
        return x - np.log(np.exp(x - x.max()).sum()) - x.max()

    def start(self, prompts, beam):
        self.rows = [list(p) for p in prompts for _ in range(beam)]
        return torch.tensor(np.stack([self.logp(list(p)) for p in prompts]))

    def advance(self, origin, tokens):
        self.rows = [self.rows[o] + [t] for o, t in zip(origin.tolist(), tokens.tolist(),
                                                          strict=True)]
        return torch.tensor(np.stack([self.logp(r) for r in self.rows]))


def _sid(layers_codes) -> tuple[str, ...]:
    return tuple(token(layer, code) for layer, code in layers_codes)


# a SID: layer 1 always, layers 2 and 3 optional (variable length, like topk / drop_layer)
variable_sid = st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 3), st.booleans(),
                         st.integers(0, 2)).map(
    lambda t: _sid([(1, t[0]), *([(2, t[2])] if t[1] else []), *([(3, t[4])] if t[3] else [])]))
fixed_sid = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)).map(
    lambda t: _sid([(1, t[0]), (2, t[1]), (3, t[2])]))


def _setup(sids):
    trie = SidTrie.build(sorted(set(sids)))
    model_ids = {t: i + 2 for i, t in enumerate(sorted(trie.vocab, reverse=True))}
    V = 2 + len(model_ids) + JUNK
    return trie, model_ids, TrieConstraint(trie, model_ids, EOS, V), V


def _brute_force(model: HashModel, prompt, sids, model_ids):
    out = []
    for sid in sids:
        seq, total = list(prompt), 0.0
        for t in [*(model_ids[x] for x in sid), EOS]:
            total += model.logp(seq)[t]
            seq.append(t)
        out.append((total, sid))
    return sorted(out, key=lambda x: -x[0])


@settings(max_examples=40, deadline=None)
@given(sids=st.one_of(st.lists(fixed_sid, min_size=1, max_size=14),
                      st.lists(variable_sid, min_size=1, max_size=14)),
       beam=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_constrained_never_emits_an_invalid_sid(sids, beam, seed):
    trie, model_ids, cons, V = _setup(sids)
    inv = {v: k for k, v in model_ids.items()}
    model = HashModel(V, seed)
    prompts = [[5, 7], [6], [2, 3, 4]]
    out = beam_search(model, prompts, beam, trie.max_depth, EOS, PAD, cons)
    valid = set(map(tuple, trie))
    assert valid == set(sids)
    for u in range(len(prompts)):
        got = [tuple(inv[t] for t in out.sequence(u, b, EOS)) for b in range(beam)
               if np.isfinite(out.scores[u, b])]
        assert len(got) == min(beam, len(valid))  # slots fill while SIDs remain
        assert all(g in valid and trie.is_complete(list(g)) for g in got)
        assert len(set(got)) == len(got)
        assert out.finished[u][np.isfinite(out.scores[u])].all()
        finite = out.scores[u][np.isfinite(out.scores[u])]
        assert np.all(np.diff(finite) <= 1e-9)


@settings(max_examples=25, deadline=None)
@given(sids=st.one_of(st.lists(fixed_sid, min_size=1, max_size=10),
                      st.lists(variable_sid, min_size=1, max_size=10)),
       seed=st.integers(0, 10_000))
def test_wide_beam_is_exact(sids, seed):
    trie, model_ids, cons, V = _setup(sids)
    model = HashModel(V, seed)
    prompt = [4, 2]
    ref = _brute_force(model, prompt, sorted(set(sids)), model_ids)
    beam = len(ref) + 2
    out = beam_search(model, [prompt], beam, trie.max_depth, EOS, PAD, cons)
    inv = {v: k for k, v in model_ids.items()}
    got = [(float(out.scores[0, b]), tuple(inv[t] for t in out.sequence(0, b, EOS)))
           for b in range(beam) if np.isfinite(out.scores[0, b])]
    assert [g[1] for g in got] == [r[1] for r in ref]
    np.testing.assert_allclose([g[0] for g in got], [r[0] for r in ref], rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(sids=st.lists(variable_sid, min_size=1, max_size=10), seed=st.integers(0, 10_000),
       beam=st.integers(1, 8))
def test_free_decoding_validity_matches_the_sid_set(sids, seed, beam):
    trie, model_ids, cons, V = _setup(sids)
    inv = {v: k for k, v in model_ids.items()}
    out = beam_search(HashModel(V, seed), [[3], [2, 2]], beam, trie.max_depth, EOS, PAD, None)
    valid = set(sids)
    for u in range(2):
        for b in range(beam):
            seq = out.sequence(u, b, EOS)
            as_sid = tuple(inv.get(t, "junk") for t in seq)
            expect = bool(out.finished[u, b]) and as_sid in valid
            assert cons.is_valid(seq) == (as_sid in valid)
            assert (out.finished[u, b] and cons.is_valid(seq)) == expect


def test_allowed_tokens_by_hand():
    sids = [("<a_1>",), ("<a_1>", "<b_2>"), ("<a_1>", "<c_0>"), ("<a_2>", "<b_2>", "<c_1>")]
    trie, model_ids, cons, _ = _setup(sids)
    a1 = cons.advance(np.array([0]), np.array([model_ids["<a_1>"]]))
    rows, cols = cons.allowed(np.array([0, int(a1[0]), -1]))
    got = {r: sorted(cols[rows == r].tolist()) for r in range(3)}
    assert got[0] == sorted([model_ids["<a_1>"], model_ids["<a_2>"]])
    assert got[1] == sorted([model_ids["<b_2>"], model_ids["<c_0>"], EOS])  # complete: may stop
    assert got[2] == []
    assert cons.advance(np.array([0]), np.array([model_ids["<b_2>"]]))[0] == -1
    with pytest.raises(ValueError, match="not in the model vocabulary"):
        TrieConstraint(trie, {"<a_1>": 2}, EOS, 10)


def test_cached_llama_scores_equal_full_forward():
    """Left padding, position ids and cache re-ordering reproduce uncached log-probs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hourglass.decode.stepper import CausalLMStepper, sequence_logprob

    sids = [("<a_0>", "<b_1>"), ("<a_0>", "<b_2>"), ("<a_1>",), ("<a_2>", "<b_0>", "<c_1>")]
    trie, model_ids, cons, V = _setup(sids)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=4, max_position_embeddings=64))
    model.eval()
    prompts = [[2, 5, 3, 4, 6, 2], [7], [3, 3, 5]]
    out = beam_search(CausalLMStepper(model, PAD), prompts, 3, trie.max_depth, EOS, PAD, cons)
    for u, prompt in enumerate(prompts):
        for b in range(3):
            seq = out.sequence(u, b, EOS)
            ref = sequence_logprob(model, prompt, [*seq, EOS])
            assert out.scores[u, b] == pytest.approx(ref, abs=1e-4)


@settings(max_examples=25, deadline=None)
@given(sids=st.lists(fixed_sid, min_size=1, max_size=12), seed=st.integers(0, 10_000))
def test_search_continued_from_a_given_prefix_is_exact_among_its_completions(sids, seed):
    """Table 1's "Given Layer 1": the prompt ends with the target's first token and the
    search starts at its trie node: a wide beam finds exactly the SIDs under that prefix, scored
    as brute force scores their remaining tokens."""
    trie, model_ids, cons, V = _setup(sids)
    model = HashModel(V, seed)
    first = sorted(set(sids))[0][0]
    prompt = [4, 2, model_ids[first]]
    node = cons.advance(np.array([0]), np.array([model_ids[first]]))
    rest = sorted({s[1:] for s in set(sids) if s[0] == first})
    ref = _brute_force(model, prompt, rest, model_ids)
    beam = len(ref) + 2
    out = beam_search(model, [prompt], beam, trie.max_depth - 1, EOS, PAD, cons, node)
    inv = {v: k for k, v in model_ids.items()}
    got = [(float(out.scores[0, b]), tuple(inv[t] for t in out.sequence(0, b, EOS)))
           for b in range(beam) if np.isfinite(out.scores[0, b])]
    assert [g[1] for g in got] == [r[1] for r in ref]
    np.testing.assert_allclose([g[0] for g in got], [r[0] for r in ref], rtol=1e-6, atol=1e-6)
