"""Generative-retrieval evaluation: trie-constrained and free beam search, Recall/NDCG, Table 2.

Pure modules (`constraint`, `beam`, `lm`, `ranking`, `metrics`, `table`) import no pyspark;
`spark` holds the mapInPandas adapter and the exact metric aggregations.
"""
