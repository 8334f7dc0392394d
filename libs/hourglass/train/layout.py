"""Where a fine-tune keeps its files: the one place the run-folder layout is spelled out.

    <output_root>/sft_runs/          runs_root(output_root)
      <strategy>/                    strategy_dir(runs_root, strategy)
        <run folder>/                input_key(...) of what it trains on, or
                                     run_folder_name(scheduler run id); or `output_dir` itself;
                                     + objective_key(...) when it trains another objective
          run.json                   RUN_FILE: table versions, codebook id, config
          train_result.json          RESULT_FILE: the finished run's result
          metrics.jsonl              METRICS_FILE: one line per logged step
          train.log                  LOG_FILE: the ranks' output, when launched as processes
          best_state.pt              BEST_FILE: the best step's weights (select_by valid_recall)
          checkpoints/               CHECKPOINTS_DIR: DeepSpeed checkpoints, for resuming
          shards/rank_<r>.json       SHARDS_DIR: each rank's row keys (record_shard_keys)
          final/                     FINAL_DIR: the exported Hugging Face model
            hourglass_sft.json       META_FILE: what that model was trained on

The ablation keeps its runs apart, under `sft_runs/<run_id>[/<scheduler run>]/<strategy>`
(`ablation_runs_root`), each strategy's folder being its run folder. A model folder is a run's
FINAL_DIR, so the run it came from is its parent (`run_of_model`). Paths only: nothing here
reads or writes, so every module that names a file of a run takes the name from here.
"""

from __future__ import annotations

import re
from pathlib import Path

SFT_RUNS_DIR = "sft_runs"
RUN_FILE = "run.json"
RESULT_FILE = "train_result.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
BEST_FILE = "best_state.pt"
CHECKPOINTS_DIR = "checkpoints"
SHARDS_DIR = "shards"
FINAL_DIR = "final"
META_FILE = "hourglass_sft.json"


def runs_root(output_root: str) -> str:
    """`<output_root>/sft_runs`: one folder per strategy, one run folder in each."""
    return str(Path(output_root.removeprefix("file:")) / SFT_RUNS_DIR)


def ablation_runs_root(output_root: str, run_id: str, scheduler_run_id: str = "") -> str:
    """`<output_root>/sft_runs/<run_id>`, plus the scheduler's run id when given."""
    root = Path(runs_root(output_root)) / run_id
    if scheduler_run_id:
        root = root / run_folder_name(scheduler_run_id)
    return str(root)


def strategy_dir(root: str, strategy: str) -> Path:
    """`<root>/<strategy>`: the run folders of one strategy."""
    return Path(root) / strategy


def run_folder_name(run_id: str) -> str:
    """A scheduler's run id as one path segment (Airflow's hold ':' and '+', which HDFS and
    some object stores refuse)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def input_key(sft_version: int, sids_version: int, codebook_id: str) -> str:
    """The folder name of a run keyed by its inputs."""
    return f"sft{sft_version}-sids{sids_version}-{codebook_id[:12] or 'nocodebook'}"


def objective_key(loss: str, gamma: float, given_prefix: int) -> str:
    """The folder suffix of a fine-tune that learns another objective than the default (plain
    cross-entropy on the whole target SID): `-focal2`, `-mile1`, `-given1`, `-given1-focal2`.
    Empty for the default, so runs made before these options keep their folders."""
    parts = [f"given{given_prefix}"] if given_prefix else []
    if loss != "ce":
        parts.append(f"{loss}{gamma:g}")
    return "".join(f"-{p}" for p in parts)


def run_of_model(model_dir: str | Path) -> Path:
    """The run folder an exported model (its FINAL_DIR) belongs to."""
    return Path(model_dir).parent
