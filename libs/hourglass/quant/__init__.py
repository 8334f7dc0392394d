"""Residual quantization math: codebook training, the encode kernel, the codebook artifact.

Pure numpy/faiss/torch: nothing here imports pyspark, so every function is testable and
usable without a JVM (the Spark adapter is `hourglass.spark.encode`).
"""
