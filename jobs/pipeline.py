"""Run the whole pipeline from one file: `spark-submit jobs/pipeline.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-pipeline`.

from hourglass.cli import pipeline

if __name__ == "__main__":
    pipeline()
