"""Rewrite SIDs per strategy: `spark-submit jobs/rewrite_sids.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.rewrite_sids import RewriteSidsConfig, run

if __name__ == "__main__":
    main_for(RewriteSidsConfig, run, "hourglass-rewrite-sids")
