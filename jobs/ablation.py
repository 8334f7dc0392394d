"""The paper's ablation in one command: `spark-submit jobs/ablation.py --config FILE`."""

from hourglass.stages.ablation import AblationConfig, run
from hourglass.stages.common import main_for

if __name__ == "__main__":
    main_for(AblationConfig, run, "hourglass-ablation")
