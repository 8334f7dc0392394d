"""Spark adapters: the session, Delta table I/O, and every module that touches a DataFrame.

One convention: code that needs pyspark lives here, named after the domain package it adapts
(`stats*` for `hourglass.stats`, `sft`, `evaluation`, `encode`, `rewrite`, `embed`, `ingest`,
`report_data`); the domain packages stay pure and testable without a JVM. Importing this package
(or its modules) does not import pyspark: pyspark is imported inside the functions that use it.
"""
