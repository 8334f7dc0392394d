"""Tokenizers that know SID tokens: a word-level one built offline, or a pretrained one extended.

Sequences are assembled as token ids directly (`convert_tokens_to_ids`), never by running text
through a subword model, so `<b_7>` is always exactly one id in either case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hourglass.sft.format import BOS, EOS, PAD, SEP, SPECIAL_TOKENS, UNK
from hourglass.sid_tokens import parse_token


def sid_vocabulary(token_lists: Iterable[Iterable[str]]) -> list[str]:
    """Distinct SID tokens, ordered by (layer, code); anything else is an error."""
    seen = {t for toks in token_lists for t in toks}
    bad = sorted(t for t in seen if t in SPECIAL_TOKENS)
    if bad:
        raise ValueError(f"special tokens {bad} found among SID tokens")
    return sorted(seen, key=parse_token)


def build_sid_tokenizer(sid_vocab: list[str]) -> Any:
    """Word-level tokenizer: special tokens first (ids 0..4), then SID tokens in order."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *sid_vocab])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, unk_token=UNK, sep_token=SEP)


def extend_tokenizer(tokenizer: Any, sid_vocab: list[str]) -> int:
    """Add SID tokens (and `<sep>`, and a pad token if missing) to a pretrained tokenizer.

    Returns how many tokens were added; the model's embeddings must be resized after.
    """
    added = tokenizer.add_special_tokens({"additional_special_tokens": [SEP]},
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
