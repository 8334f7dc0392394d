"""Embed item text into `item_embeddings`: `spark-submit jobs/embed_items.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.embed_items import EmbedItemsConfig, run

if __name__ == "__main__":
    main_for(EmbedItemsConfig, run, "hourglass-embed-items")
