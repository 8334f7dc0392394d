"""Build `sft_examples`: `spark-submit jobs/build_sft_data.py --config FILE`."""

from hourglass.stages.build_sft_data import BuildSftDataConfig, run
from hourglass.stages.common import main_for

if __name__ == "__main__":
    main_for(BuildSftDataConfig, run, "hourglass-build-sft-data")
