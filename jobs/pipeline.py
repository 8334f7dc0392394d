"""Run the whole pipeline from one file: `spark-submit jobs/pipeline.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.pipeline import PipelineConfig, report_paths, run

if __name__ == "__main__":
    # The report's path is the last line a person sees (after the JSON summary of every step).
    for path in report_paths(main_for(PipelineConfig, run, "hourglass-pipeline")):
        print(f"\nReport: file://{path}")
