"""Embed item text into `item_embeddings`: `spark-submit jobs/embed_items.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-embed-items`.

from hourglass.cli import embed_items

if __name__ == "__main__":
    embed_items()
