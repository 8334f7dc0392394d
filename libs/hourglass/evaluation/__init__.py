"""Generative-retrieval evaluation: trie-constrained and free beam search, Recall/NDCG, Table 2.

Pure modules: nothing here imports pyspark. The mapInPandas adapter and the exact metric
aggregations are `hourglass.spark.evaluation`.
"""
