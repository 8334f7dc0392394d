"""Stage runners: one typed config and one `run(spark, cfg)` per pipeline stage.

Jobs in `jobs/` are thin wrappers around these; the pipeline job chains them.
"""
