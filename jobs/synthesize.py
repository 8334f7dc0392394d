"""Synthetic long-tail embeddings for scale work: `spark-submit jobs/synthesize.py --config F`."""
# Installed from the wheel, the same job is the command `hourglass-synthesize`.

from hourglass.cli import synthesize

if __name__ == "__main__":
    synthesize()
