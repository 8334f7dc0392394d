"""Hourglass statistics of a SID table: `spark-submit jobs/hourglass_stats.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-stats`.

from hourglass.cli import hourglass_stats

if __name__ == "__main__":
    hourglass_stats()
