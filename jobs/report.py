"""Render the hourglass HTML report: `spark-submit jobs/report.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-report`.

from hourglass.cli import report

if __name__ == "__main__":
    report()
