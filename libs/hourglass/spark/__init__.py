"""Spark adapters: session, Delta table I/O, UDFs. Importing this package needs pyspark."""
