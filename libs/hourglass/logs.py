"""The package logger and its one setup, shared by stages, the trainer and notebooks.

It sits in the base layer so that training (which runs without Spark) and the stages log to the
same `hourglass` logger without importing each other.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("hourglass")


# Libraries whose INFO lines are their own plumbing, not our stages' progress: py4j logs every
# gateway connection it opens and closes (and, from `__del__` at interpreter exit, onto a stderr
# that may already be closed).
QUIET_LOGGERS = ("py4j",)


def setup_logging() -> None:
    """Plain timestamped log lines on stderr, for spark-submit logs and notebooks alike."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
