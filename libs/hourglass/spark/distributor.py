"""Fine-tuning launched by Spark: `pyspark.ml.deepspeed.DeepspeedTorchDistributor` runs the
trainer on barrier tasks, so a Databricks/Spark job trains without a separate launcher.

The training itself (`hourglass.train`) imports no pyspark; this is its Spark adapter.
"""

from __future__ import annotations

from typing import Any

from hourglass.train.config import TrainConfig


def _distributed_entry(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """What each torchrun rank runs under DeepspeedTorchDistributor (pickled by Spark)."""
    from dataclasses import asdict

    from hourglass.logs import setup_logging
    from hourglass.train.trainer import train

    setup_logging()
    return asdict(train(TrainConfig.from_dict(cfg_dict)))


def run_with_distributor(cfg: TrainConfig, num_procs: int, use_gpu: bool,
                         local_mode: bool = True, nnodes: int = 1) -> dict[str, Any]:
    """Train through `pyspark.ml.deepspeed.DeepspeedTorchDistributor` (needs an active session).

    `num_procs` is per node; with `local_mode=False` Spark runs one barrier task per node.
    """
    from pyspark.ml.deepspeed.deepspeed_distributor import DeepspeedTorchDistributor

    distributor = DeepspeedTorchDistributor(numGpus=num_procs, nnodes=nnodes,
                                            localMode=local_mode, useGpu=use_gpu,
                                            deepspeedConfig=cfg.ds_config_path())
    return distributor.run(_distributed_entry, cfg.to_dict())
