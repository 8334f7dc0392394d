"""Item text → `item_embeddings` inside Spark, one encoder per Python worker.

`mapInPandas` hands each worker an iterator of Arrow batches; the encoder is cached in a module
global keyed by its settings, so it is loaded once per worker process (Spark reuses Python
workers across tasks) and every batch streams through it: memory does not grow with the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hourglass.embed.text import item_text

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from hourglass.embed.encoder import TextEncoder

EMBEDDINGS_SCHEMA = "item_id string, embedding array<float>, model string"
_ENCODERS: dict[tuple, TextEncoder] = {}


def _encoder(model_dir: str | None, max_length: int, batch_size: int, threads: int,
             backend: str):
    from hourglass.embed.encoder import TextEncoder

    key = (model_dir, max_length, batch_size, threads, backend)
    if key not in _ENCODERS:
        _ENCODERS[key] = TextEncoder(model_dir, max_length=max_length, batch_size=batch_size,
                                     threads=threads, backend=backend)
    return _ENCODERS[key]


def embed_partitions(
    model_dir: str | None, model_name: str, fields: list[str], max_length: int,
    batch_size: int, threads: int, backend: str = "torch",
):
    """The mapInPandas function: item rows → (item_id, embedding, model)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        enc = _encoder(model_dir, max_length, batch_size, threads, backend)
        for pdf in batches:
            if pdf.empty:
                continue
            texts = [item_text(row, fields) for row in pdf.to_dict("records")]
            vectors = enc.encode(texts)
            yield pd.DataFrame({
                "item_id": pdf["item_id"].to_numpy(),
                "embedding": list(vectors),
                "model": model_name,
            })

    return run


def with_text_reason(items: DataFrame, fields: list[str]) -> DataFrame:
    """Tag items whose chosen fields are all empty: there is nothing to embed."""
    from pyspark.sql import functions as F

    joined = F.concat_ws("", *[F.trim(F.coalesce(F.col(f), F.lit(""))) for f in fields])
    return items.withColumn(
        "_reason",
        F.when(F.length(joined) == 0,
               F.lit(f"empty text in fields {','.join(fields)}")).otherwise(F.lit(None)),
    )
