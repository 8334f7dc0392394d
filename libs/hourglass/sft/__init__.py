"""SFT data for generative retrieval (paper §2.2): leave-one-out examples of SID sequences.

`examples` is the plain-Python definition, `format` the one place that frames prompt and target
with special tokens, `tokenizer` the SID-aware tokenizer training and decoding share. The
table-scale build is `hourglass.spark.sft`.
"""
