"""Hourglass statistics of a SID table: `spark-submit jobs/hourglass_stats.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.hourglass_stats import HourglassStatsConfig, run

if __name__ == "__main__":
    main_for(HourglassStatsConfig, run, "hourglass-hourglass_stats")
