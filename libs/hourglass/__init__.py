"""hourglass: residual-quantized semantic IDs at table scale, and the hourglass that breaks them.

Pure math (quantization, statistics, rewriting, tries) imports no pyspark; Spark adapters live
in `hourglass.spark` and import pyspark lazily.
"""

__version__ = "0.1.0"
