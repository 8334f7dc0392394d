"""Synthetic long-tail embeddings for scale work: `spark-submit jobs/synthesize.py --config F`."""

from hourglass.stages.common import main_for
from hourglass.stages.synthesize import SynthesizeConfig, run

if __name__ == "__main__":
    main_for(SynthesizeConfig, run, "hourglass-synthesize")
