"""Trie-constrained beam search over SIDs with any HF causal LM: the decoding the evaluation
scores with and the trainer's checkpoint selection checks with (so it sits below both)."""
