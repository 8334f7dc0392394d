"""Evaluate fine-tuned models into `eval_results`: `spark-submit jobs/evaluate.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.evaluate import EvaluateConfig, run

if __name__ == "__main__":
    main_for(EvaluateConfig, run, "hourglass-evaluate")
