"""Train the codebook artifact: `spark-submit jobs/train_codebooks.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-train-codebooks`.

from hourglass.cli import train_codebooks

if __name__ == "__main__":
    train_codebooks()
