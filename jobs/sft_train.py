"""DeepSpeed SFT on `sft_examples`; run under a launcher, one process per rank:

    deepspeed --num_gpus 2 jobs/sft_train.py --config configs/demo.yaml --output_root demo-output
    torchrun --nproc_per_node 2 jobs/sft_train.py --config FILE

On a Spark cluster use `hourglass.train.launch.run_with_distributor` (DeepspeedTorchDistributor).
"""

from hourglass.train.launch import main

if __name__ == "__main__":
    main()
