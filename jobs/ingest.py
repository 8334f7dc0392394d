"""Ingest items and interactions into Delta: `spark-submit jobs/ingest.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.ingest import IngestConfig, run

if __name__ == "__main__":
    main_for(IngestConfig, run, "hourglass-ingest")
