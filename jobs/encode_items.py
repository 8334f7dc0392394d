"""Encode item embeddings into SIDs: `spark-submit jobs/encode_items.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.encode_items import EncodeItemsConfig, run

if __name__ == "__main__":
    main_for(EncodeItemsConfig, run, "hourglass-encode-items")
