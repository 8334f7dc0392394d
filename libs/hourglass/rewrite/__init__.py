"""SID rewriting (paper §4): strategies on plain arrays, the SID prefix trie, vocabulary export.

Pure numpy; the table-scale rewrite lives in `hourglass.spark.rewrite`.
"""
