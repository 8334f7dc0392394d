"""The one place that fixes how an SFT example becomes a token sequence.

Table rows keep only SID tokens and item separators (`prompt_tokens`, `target_tokens`); the
trainer and the evaluator both frame them with the same special tokens:

    <s> prompt_tokens <sep> target_tokens </s>

With a query (prompt modes `query_history` and `query`, the paper's eq. 4 for personalized
search), its text tokens come first, closed by `<q>`:

    <s> query tokens <q> prompt_tokens <sep> target_tokens </s>

so a model always knows where the query ends and the history (or, with `query`, the target)
begins. A query is capped at `MAX_QUERY_TOKENS` (its first tokens kept); a long history is cut
from its oldest items, never into the query.

The closing `</s>` is what lets a model stop after a short SID when SIDs have variable length
(topk keeps `<a_1> <c_5>` next to `<a_1> <b_2> <c_5>`): a beam is a whole SID once it emits it.
"""

from __future__ import annotations

from collections.abc import Sequence

PAD = "<pad>"
UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
SEP = "<sep>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, SEP)
QUERY_END = "<q>"
MAX_QUERY_TOKENS = 32

# What a prompt holds: the item history (recommendation, today's default), the query then the
# history (personalized search, the paper's eq. 4), or the query alone (plain product search).
PROMPT_MODES = ("history", "query_history", "query")


def uses_query(prompt_mode: str) -> bool:
    """Whether prompts of `prompt_mode` start with the example's query."""
    if prompt_mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt_mode {prompt_mode!r}: use one of {PROMPT_MODES}")
    return prompt_mode != "history"


def join_history(item_tokens: Sequence[Sequence[str]]) -> list[str]:
    """SID tokens of the history items, oldest first, with `<sep>` between two items."""
    out: list[str] = []
    for i, toks in enumerate(item_tokens):
        if i:
            out.append(SEP)
        out.extend(toks)
    return out


def frame_prompt(prompt_ids: Sequence[int], bos_id: int, sep_id: int,
                 max_prompt_len: int | None = None, query: Sequence[int] = ()) -> list[int]:
    """`<s> [query] prompt <sep>`, keeping the newest items when the prompt is too long.

    Truncation cuts at an item boundary (just after a `<sep>`), never inside a SID, so the model
    never sees a SID without its first-layer token. `query` (its ids closed by the `<q>` id, see
    `hourglass.sft.tokenizer.QueryIds`) is kept whole: only the history gives way.
    """
    ids, query = list(prompt_ids), list(query)
    if max_prompt_len is not None and len(query) + 2 > max_prompt_len:
        raise ValueError(f"a prompt of {max_prompt_len} tokens has no room for a query of "
                         f"{len(query)}")
    if max_prompt_len is not None and len(ids) + len(query) + 2 > max_prompt_len:
        keep = max(0, max_prompt_len - 2 - len(query))
        start = len(ids) - keep
        while start < len(ids) and start > 0 and ids[start - 1] != sep_id:
            start += 1
        ids = ids[start:]
    return [bos_id, *query, *ids, sep_id]


def history_labels(prompt: Sequence[int], sep_id: int, start: int = 1) -> list[int]:
    """Labels of a framed prompt `<s> [query] item <sep> item … <sep>` that train on its
    history too: the SID tokens of every item after the first (each predicted from the items
    before it, as the target is); `<s>`, the query (the `start` - 1 tokens after `<s>`), the
    first item and every `<sep>` carry no loss."""
    labels, items_seen = [], 0
    for i, t in enumerate(prompt):
        if i < start or t == sep_id:
            items_seen += i >= start and t == sep_id
            labels.append(-100)
        else:
            labels.append(t if items_seen >= 1 else -100)
    return labels


def frame_example(prompt_ids: Sequence[int], target_ids: Sequence[int], bos_id: int,
                  sep_id: int, eos_id: int, max_len: int | None = None,
                  label_history: bool = False, given_prefix: int = 0,
                  query: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one training example; labels are -100 outside the target.

    Loss on the target only (paper eq. 4): the history is context, not something to predict.
    `label_history` also puts loss on the history items after the first (`history_labels`):
    one forward then teaches every next-item step of the window, as SASRec's loss does.
    `given_prefix` n (Table 1's "Given Layer 1"): the first n target tokens are part of the
    prompt — the input is unchanged, they just carry no loss — so the model learns only the
    rest of the SID, as evaluation then asks it to. `query` (ids closed by `<q>`) opens the
    prompt and is context only.
    """
    if not 0 <= given_prefix < len(target_ids):
        raise ValueError(f"given_prefix {given_prefix} leaves no target token of "
                         f"{len(target_ids)} to learn")
    target = [*target_ids, eos_id]
    budget = None if max_len is None else max_len - len(target)
    if budget is not None and budget < 2:
        raise ValueError(f"max_len {max_len} leaves no room for a prompt before {len(target)} "
                         "target tokens")
    prompt = frame_prompt(prompt_ids, bos_id, sep_id, budget, query)
    head = (history_labels(prompt, sep_id, 1 + len(query)) if label_history
            else [-100] * len(prompt))
    return prompt + target, head + [-100] * given_prefix + target[given_prefix:]
