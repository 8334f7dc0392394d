"""Hourglass statistics of semantic IDs (paper §3.1, docs/contract.md "Hourglass statistics").

`metrics`, `paths` and `quantiles` are plain numpy: they define every number and serve as the
reference the Spark implementation (`hourglass.spark.stats`) is tested against. The Spark side
aggregates at table scale and only brings per-token counts (at most one row per layer and code)
and small histograms to the driver.
"""
