"""Render the hourglass HTML report: `spark-submit jobs/report.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.report import ReportConfig, run

if __name__ == "__main__":
    main_for(ReportConfig, run, "hourglass-report")
