"""The causal LM to fine-tune: a tiny LLaMA-style model from scratch, or any local HF model.

New SID rows of a pretrained model's embedding matrix start at the mean of the existing rows
(plus the covariance-shaped noise `resize_token_embeddings(mean_resizing=True)` adds): a new
token then starts where an average token is, so the first steps do not push hidden states off
the distribution the pretrained layers expect (Hewitt, "Initializing new word embeddings", 2021).
"""

from __future__ import annotations

from typing import Any

from hourglass.sft.tokenizer import SpecialIds
from hourglass.train.config import TrainConfig


def tiny_llama_config(vocab_size: int, special: SpecialIds, hidden_size: int = 128,
                      num_layers: int = 2, num_heads: int = 4, intermediate_size: int = 256,
                      max_positions: int = 256) -> Any:
    """A LLaMA-architecture config small enough to train for a minute on two CPU cores."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_heads, max_position_embeddings=max_positions,
        pad_token_id=special.pad, bos_token_id=special.bos, eos_token_id=special.eos,
        tie_word_embeddings=True, attention_dropout=0.0,
    )


def load_tokenizer_and_model(cfg: TrainConfig, sid_vocab: list[str],
                             query_vocab: list[str] | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) with every SID token in the vocabulary and the embeddings sized to it;
    with `query_vocab` (prompt modes with a query) also `<q>`, and for the from-scratch model
    the query words."""
    import torch

    from hourglass.sft.tokenizer import build_sid_tokenizer, extend_tokenizer

    torch.manual_seed(cfg.seed)
    if not cfg.model:
        tok = build_sid_tokenizer(sid_vocab, query_vocab)
        special = SpecialIds.of(tok)
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM(tiny_llama_config(
            len(tok), special, cfg.hidden_size, cfg.num_layers, cfg.num_heads,
            cfg.intermediate_size, cfg.max_seq_len))
        return tok, model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model)
    extend_tokenizer(tok, sid_vocab, query=query_vocab is not None)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    special = SpecialIds.of(tok)
    model.config.pad_token_id = special.pad
    return tok, model
