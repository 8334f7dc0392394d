"""The package logger and its one setup, shared by stages, the trainer and notebooks.

It sits in the base layer so that training (which runs without Spark) and the stages log to the
same `hourglass` logger without importing each other.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("hourglass")


def setup_logging() -> None:
    """Plain timestamped log lines on stderr, for spark-submit logs and notebooks alike."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
