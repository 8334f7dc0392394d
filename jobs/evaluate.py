"""Evaluate fine-tuned models into `eval_results`: `spark-submit jobs/evaluate.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-evaluate`.

from hourglass.cli import evaluate

if __name__ == "__main__":
    evaluate()
