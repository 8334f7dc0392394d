"""A Hugging Face causal LM as a `StepModel`: one prefill per user, then one token per step.

Prompts are left-padded with explicit position ids, so every prompt ends at the same column and
padding changes neither positions nor attention. The key/value cache is copied `beam` times
after the prefill and re-ordered by beam origin each step, so a step costs one token per beam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class CausalLMStepper:
    """Implements `hourglass.decode.beam.StepModel` for `*ForCausalLM` models."""

    def __init__(self, model: Any, pad_id: int, device: str = "cpu") -> None:
        self.model = model
        self.pad_id = int(pad_id)
        self.device = device
        self.cache: Any = None
        self.mask: Any = None
        self.next_pos: Any = None

    def _forward(self, input_ids: Any, mask: Any, pos: Any, cache: Any = None) -> Any:
        import torch

        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                             past_key_values=cache, use_cache=True)
        self.cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    def start(self, prompts: Sequence[Sequence[int]], beam: int) -> Any:
        import torch

        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = p
            mask[i, width - len(p):] = 1
        ids_t = torch.from_numpy(ids).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        pos = (mask_t.cumsum(-1) - 1).clamp(min=0)
        logp = self._forward(ids_t, mask_t, pos)
        self.cache.batch_repeat_interleave(beam)
        self.mask = mask_t.repeat_interleave(beam, dim=0)
        self.next_pos = pos[:, -1:].repeat_interleave(beam, dim=0) + 1
        return logp.cpu()

    def advance(self, origin: Any, tokens: Any) -> Any:
        import torch

        origin = origin.to(self.device)
        self.cache.reorder_cache(origin)
        ones = torch.ones((len(origin), 1), dtype=self.mask.dtype, device=self.device)
        self.mask = torch.cat([self.mask[origin], ones], dim=1)
        pos = self.next_pos[origin]
        logp = self._forward(tokens.to(self.device)[:, None], self.mask, pos, self.cache)
        self.next_pos = pos + 1
        return logp.cpu()


def sequence_logprob(model: Any, prompt: Sequence[int], continuation: Sequence[int]) -> float:
    """Sum of log-probs of `continuation` after `prompt` by one plain forward (no cache):
    the reference the cached beam search must reproduce."""
    import torch

    ids = torch.tensor([[*prompt, *continuation]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt) - 1
    return float(sum(logp[start + i, t] for i, t in enumerate(continuation)))
