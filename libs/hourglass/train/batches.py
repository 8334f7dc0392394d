"""Encoded SFT examples and padded batches for training and loss evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hourglass.sft.format import frame_example
from hourglass.sft.tokenizer import QueryIds, TokenIds


@dataclass(frozen=True)
class EncodedExamples:
    """(input_ids, labels) per example; labels are -100 outside the target + `</s>`."""

    inputs: list[list[int]]
    labels: list[list[int]]

    def __len__(self) -> int:
        return len(self.inputs)


def encode_examples(rows: dict[str, list], ids: TokenIds, max_len: int,
                    label_history: bool = False, given_prefix: int = 0,
                    queries: QueryIds | None = None) -> EncodedExamples:
    """Frame every row as `<s> [query <q>] prompt <sep> target </s>` within `max_len` tokens
    (loss on the history items too with `label_history`; none on the first `given_prefix`
    target tokens); with `queries`, each row's `query` opens its prompt."""
    sp = ids.special
    inputs, labels = [], []
    texts = rows["query"] if queries is not None else [None] * len(rows["prompt_tokens"])
    for prompt, target, text in zip(rows["prompt_tokens"], rows["target_tokens"], texts,
                                    strict=True):
        query = queries.ids(text) if queries is not None else ()
        x, y = frame_example(ids.ids(prompt), ids.ids(target), sp.bos, sp.sep, sp.eos, max_len,
                             label_history, given_prefix, query)
        inputs.append(x)
        labels.append(y)
    return EncodedExamples(inputs, labels)


def collate(enc: EncodedExamples, index: Sequence[int], pad_id: int, device: Any = "cpu"
            ) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and loss."""
    import torch

    width = max(len(enc.inputs[i]) for i in index)
    n = len(index)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    labels = np.full((n, width), -100, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    for row, i in enumerate(index):
        x, y = enc.inputs[i], enc.labels[i]
        input_ids[row, :len(x)] = x
        labels[row, :len(y)] = y
        mask[row, :len(x)] = 1
    return {"input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
            "labels": torch.from_numpy(labels).to(device)}


def target_tokens(batch: dict[str, Any]) -> int:
    """Tokens that carry loss in a batch (HF shifts labels by one inside the model)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def real_tokens(batch: dict[str, Any]) -> int:
    return int(batch["attention_mask"].sum())
