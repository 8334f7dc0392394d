"""The HTML report a person opens: hourglass figures per run, run comparison, rewrite and
evaluation tables. Rendering (`render`, `figures`, `flow`, `html`) works on pandas frames with
matplotlib and needs no Spark; `hourglass.spark.report_data` reads the tables.
"""
