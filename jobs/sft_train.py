"""DeepSpeed SFT on `sft_examples`; run under a launcher, one process per rank:

    deepspeed --num_gpus 2 jobs/sft_train.py --config configs/demo.yaml --output_root demo-output
    torchrun --nproc_per_node 2 jobs/sft_train.py --config FILE

Installed from the wheel, the same job is the command `hourglass-sft-train` (one rank). On a
Spark cluster use `hourglass.train.launch.run_with_distributor` (DeepspeedTorchDistributor).
"""

from hourglass.cli import sft_train

if __name__ == "__main__":
    sft_train()
