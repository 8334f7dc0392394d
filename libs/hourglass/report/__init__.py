"""The HTML report a person opens: hourglass figures per run, run comparison, rewrite and
evaluation tables. Rendering (`render`, `figures`, `flow`, `html`) works on pandas frames with
matplotlib's Agg backend and needs no Spark; `data.load_report_data` reads the tables.
"""
