"""The paper's ablation in one command: `spark-submit jobs/ablation.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-ablation`.

from hourglass.cli import ablation

if __name__ == "__main__":
    ablation()
