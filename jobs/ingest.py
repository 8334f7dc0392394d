"""Ingest items and interactions into Delta: `spark-submit jobs/ingest.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-ingest`.

from hourglass.cli import ingest

if __name__ == "__main__":
    ingest()
