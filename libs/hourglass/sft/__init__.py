"""SFT data for generative retrieval (paper §2.2): leave-one-out examples of SID sequences.

`examples` is the plain-Python definition, `spark` the table-scale build, `format` the one
place that frames prompt and target with special tokens for training and decoding.
"""
