"""Run the whole pipeline from one file: `spark-submit jobs/pipeline.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.pipeline import PipelineConfig, run

if __name__ == "__main__":
    main_for(PipelineConfig, run, "hourglass-pipeline")
