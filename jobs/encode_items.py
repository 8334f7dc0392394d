"""Encode item embeddings into SIDs: `spark-submit jobs/encode_items.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-encode-items`.

from hourglass.cli import encode_items

if __name__ == "__main__":
    encode_items()
