"""Tokenizers that know SID tokens: a word-level one built offline, or a pretrained one extended.

Sequences are assembled as token ids directly (`convert_tokens_to_ids`), never by running text
through a subword model, so `<b_7>` is always exactly one id in either case. Query text (prompt
modes with a query) is the exception: a pretrained backbone's own tokenizer splits it, as it
was trained to; the from-scratch model gets a word vocabulary built from the training split's
queries (`query_vocabulary`), and a word it never saw is `<unk>`, counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hourglass.sft.format import (
    BOS,
    EOS,
    MAX_QUERY_TOKENS,
    PAD,
    QUERY_END,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    uses_query,
)
from hourglass.sid_tokens import parse_token

WORDS = "words"  # query tokens of the from-scratch model: its own word vocabulary
BACKBONE = "backbone"  # query tokens of a pretrained model: its tokenizer's subwords


def sid_vocabulary(token_lists: Iterable[Iterable[str]]) -> list[str]:
    """Distinct SID tokens, ordered by (layer, code); anything else is an error."""
    seen = {t for toks in token_lists for t in toks}
    bad = sorted(t for t in seen if t in SPECIAL_TOKENS)
    if bad:
        raise ValueError(f"special tokens {bad} found among SID tokens")
    return sorted(seen, key=parse_token)


def query_words(query: str) -> list[str]:
    """The words of a query for the word vocabulary: lowercase runs of letters and digits."""
    return re.findall(r"\w+", query.lower())


def query_vocabulary(queries: Iterable[str | None]) -> list[str]:
    """Distinct query words (sorted), from the training split's queries only: a word seen only
    in valid or test is `<unk>` to the model, as an unseen query word is in production."""
    return sorted({w for q in queries if q for w in query_words(q)})


def build_sid_tokenizer(sid_vocab: list[str], query_vocab: Sequence[str] | None = None) -> Any:
    """Word-level tokenizer: special tokens first (ids 0..4), then SID tokens in order; with a
    `query_vocab`, then `<q>` and the query words (after the SIDs, so a SID's id is the same
    with or without queries)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    extra = [] if query_vocab is None else [QUERY_END, *query_vocab]
    clash = sorted(set(extra[1:]) & {*SPECIAL_TOKENS, *sid_vocab})
    if clash:
        raise ValueError(f"query words {clash[:5]} clash with SID or special tokens")
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *sid_vocab, *extra])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, unk_token=UNK, sep_token=SEP)


def extend_tokenizer(tokenizer: Any, sid_vocab: list[str], query: bool = False) -> int:
    """Add SID tokens (and `<sep>`, `<q>` with `query`, and a pad token if missing) to a
    pretrained tokenizer.

    Returns how many tokens were added; the model's embeddings must be resized after.
    """
    added = tokenizer.add_special_tokens(
        {"additional_special_tokens": [SEP, *([QUERY_END] if query else [])]},
        replace_additional_special_tokens=False)
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    if tokenizer.bos_token is None:
        added += tokenizer.add_special_tokens({"bos_token": BOS})
    if tokenizer.eos_token is None:
        added += tokenizer.add_special_tokens({"eos_token": EOS})
    return added + tokenizer.add_tokens(list(sid_vocab), special_tokens=False)


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    bos: int
    eos: int
    sep: int
    unk: int

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialIds:
        sep = tokenizer.convert_tokens_to_ids(SEP)
        unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else -1
        ids = cls(pad=tokenizer.pad_token_id, bos=tokenizer.bos_token_id,
                  eos=tokenizer.eos_token_id, sep=sep, unk=unk)
        if None in (ids.pad, ids.bos, ids.eos) or sep is None or sep == unk:
            raise ValueError(f"tokenizer lacks special tokens: {ids}")
        return ids


class TokenIds:
    """Token string → id for SID sequences; unknown tokens are counted, not silently merged."""

    def __init__(self, tokenizer: Any) -> None:
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.special = SpecialIds.of(tokenizer)
        self.unknown = 0

    def ids(self, tokens: Iterable[str]) -> list[int]:
        out = []
        for t in tokens:
            i = self.vocab.get(t)
            if i is None:
                self.unknown += 1
                i = self.special.unk
            out.append(i)
        return out


class QueryIds:
    """Query text → model ids closed by `<q>` (`hourglass.sft.format.frame_prompt`'s `query`).

    `kind` `words`: the from-scratch model's word vocabulary (an unseen word is `<unk>`,
    counted in `unknown`); `backbone`: the pretrained tokenizer's own split of the text. At most
    `max_tokens` tokens of a query are kept, its first ones.
    """

    def __init__(self, tokenizer: Any, kind: str, max_tokens: int = MAX_QUERY_TOKENS) -> None:
        if kind not in (WORDS, BACKBONE):
            raise ValueError(f"query tokens must be {WORDS} or {BACKBONE}, got {kind!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_tokens = max_tokens
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        end = self.vocab.get(QUERY_END)
        if end is None:
            raise ValueError(f"the tokenizer has no {QUERY_END} token: it was not built for "
                             "queries")
        self.end = end
        self.unk = SpecialIds.of(tokenizer).unk
        self.unknown = 0

    def ids(self, query: str | None) -> list[int]:
        if not query:
            raise ValueError("an example of a query prompt mode has no query")
        if self.kind == WORDS:
            out = []
            for w in query_words(query)[:self.max_tokens]:
                i = self.vocab.get(w)
                if i is None:
                    self.unknown += 1
                    i = self.unk
                out.append(i)
        else:
            out = list(self.tokenizer(query, add_special_tokens=False)["input_ids"])
            out = out[:self.max_tokens]
        return [*out, self.end]


def query_ids_for(tokenizer: Any, meta: Mapping[str, Any]) -> QueryIds | None:
    """The query encoder a fine-tuned model was trained with (its `hourglass_sft.json`), or
    None for a model whose prompts have no query."""
    mode = meta.get("prompt_mode", "history")
    if not uses_query(mode):
        return None
    return QueryIds(tokenizer, meta.get("query_tokens", WORDS),
                    int(meta.get("max_query_tokens", MAX_QUERY_TOKENS)))
