"""DeepSpeed SFT on `sft_examples`; run under a launcher, one process per rank:

    deepspeed --num_gpus 2 jobs/sft_train.py --config configs/demo.yaml --strategy "topk(16)"
    torchrun --nproc_per_node 2 jobs/sft_train.py --config FILE

A pipeline file (as configs/demo.yaml) gives its `output_root` and its ablation's `train:` keys.

Installed from the wheel, the same job is the command `hourglass-sft-train` (one rank). On a
Spark cluster use `hourglass.train.launch.run_with_distributor` (DeepspeedTorchDistributor).
"""

from hourglass.cli import sft_train

if __name__ == "__main__":
    sft_train()
