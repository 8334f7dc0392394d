"""Build `sft_examples`: `spark-submit jobs/build_sft_data.py --config FILE`."""
# Installed from the wheel, the same job is the command `hourglass-build-sft-data`.

from hourglass.cli import build_sft_data

if __name__ == "__main__":
    build_sft_data()
