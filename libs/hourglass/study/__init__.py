"""The paper's study in one command (`hourglass-paper-tables`, `benchmarks/paper_tables.py`):
Table 1's diagnostics, Table 2's baselines and fixes, the invalid-SID ratio, a budget curve."""
