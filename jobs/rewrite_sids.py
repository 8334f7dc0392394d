"""Rewrite SIDs per strategy: `spark-submit jobs/rewrite_sids.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-rewrite-sids`.

from hourglass.cli import rewrite_sids

if __name__ == "__main__":
    rewrite_sids()
