"""Train the codebook artifact: `spark-submit jobs/train_codebooks.py --config FILE`."""

from hourglass.stages.common import main_for
from hourglass.stages.train_codebooks import TrainCodebooksConfig, run

if __name__ == "__main__":
    main_for(TrainCodebooksConfig, run, "hourglass-train-codebooks")
