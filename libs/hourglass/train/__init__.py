"""DeepSpeed SFT of a causal LM on SID sequences, reading `sft_examples` shards from Delta.

Import-light: torch, transformers and deepspeed are imported inside the functions that use them.
"""
