"""Typed config of the DeepSpeed SFT trainer (section `sft_train`).

Batch size, accumulation, learning rate and ZeRO stage are not here: they live in the DeepSpeed
JSON (`deepspeed_config`), so each value is set in exactly one place. The launcher's own flags
(`--local_rank`, `--deepspeed`) are accepted and dropped by `parse_train_args`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from hourglass.config import ConfigError, StageConfig, require
from hourglass.resources import deepspeed_config_file, deepspeed_config_names
from hourglass.rewrite.strategies import parse_strategy
from hourglass.sft.format import PROMPT_MODES
from hourglass.table_refs import is_path
from hourglass.tracking import tracking_field
from hourglass.train.layout import objective_key, run_folder_name, runs_root, strategy_dir
from hourglass.train.losses import LOSSES

# A DeepSpeed JSON shipped in the package (hourglass/resources/deepspeed/), named by file name.
DEFAULT_DS_CONFIG = "zero2_cpu_fp32.json"


@dataclasses.dataclass
class TrainConfig(StageConfig):
    """Fine-tune a causal LM on one strategy's `sft_examples` with DeepSpeed.

    Keys:
        strategy: the SID strategy whose sft_examples rows are trained on
        sft_table: input table of SFT examples
        sft_version: Delta version of sft_examples; empty: the latest (or the run's recorded one)
        sids_table: SID table whose vocabulary is added to the tokenizer
        sids_version: Delta version of the SID table; empty: the latest (or the run's recorded one)
        output_dir: run folder; empty: <output_root>/sft_runs/<strategy>/<inputs or scheduler run>
        model: local Hugging Face causal LM folder; empty: a tiny model from scratch
        hidden_size: hidden size of the from-scratch model
        num_layers: transformer layers of the from-scratch model
        num_heads: attention heads of the from-scratch model (divides hidden_size)
        intermediate_size: feed-forward size of the from-scratch model
        max_seq_len: tokens per example (prompt + target SID + </s>)
        prompt_mode: what a prompt holds: history (the item history, recommendation),
            query_history (the query, then the history: personalized search, the paper's
            eq. 4) or query (the query alone); must be the mode sft_examples was built with
        loss_on: target (the target SID only, paper eq. 4) or all_items (also every history
            item after the first, each from the items before it; validation loss stays target)
        given_prefix: first target-SID tokens given as input (Table 1's "Given Layer 1"): no
            loss on them, and evaluation continues the SID from them; a diagnostic that sees
            part of the answer, labelled <strategy>+given_<n> in eval_results; 0: off
        loss: ce, focal (Lin et al. 2017) or mile (Su et al. 2024) on the labelled tokens
            (hourglass.train.losses); train_loss reports it, valid_loss is always plain CE so
            runs with different losses compare
        focal_gamma: focal γ in -(1 - p_t)^γ log p_t (2: Lin et al.'s choice; 0: CE)
        mile_gamma: MiLe γ in -(1 + H_t)^γ log p_t, H_t the entropy of the predicted
            distribution, weights scaled to mean 1 per batch (1: the MiLe authors'; 0: CE)
        deepspeed_config: DeepSpeed JSON (batch, optimizer, ZeRO stage): a path or a packaged name
        max_steps: optimizer steps to train
        log_every: steps between logged loss / learning rate / tokens per second
        eval_every: steps between validation losses; 0: at the end only
        eval_at_start: compute the validation loss before the first step
        max_valid_examples: validation rows used for the validation loss
        select_by: last (export the last step) or valid_recall (check Recall@recall_k on
            validation users every eval_every steps and export the best-scoring step)
        recall_k: k of the validation Recall@k that selects the checkpoint
        recall_beam: beams of the validation beam search (>= recall_k)
        recall_users: validation users scored per check, over all ranks
        patience: with valid_recall, stop after this many checks without a better figure;
            0: train all max_steps
        save_every: steps between checkpoints; 0: at the end only
        keep_checkpoints: checkpoints kept in the run folder
        resume: continue from the run folder's latest checkpoint (or skip a finished run)
        seed: seed of the model init and of the batch order
        device: auto, cpu or cuda
        torch_threads: CPU threads per rank; 0: the host's cores shared by its ranks
        progress: show a progress bar on rank 0
        record_shard_keys: write each rank's row keys to shards/ (for tests)
        scheduler_run_id: the scheduler's run id, naming the run folder instead of the inputs
    """

    strategy: str = "none"
    sft_table: str = "sft_examples"
    sft_version: int | None = None
    sids_table: str = "item_sids_rw"
    sids_version: int | None = None
    output_dir: str = ""
    model: str = ""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_seq_len: int = 256
    prompt_mode: str = "history"
    loss_on: str = "target"
    given_prefix: int = 0
    loss: str = "ce"
    focal_gamma: float = 2.0
    mile_gamma: float = 1.0
    deepspeed_config: str = DEFAULT_DS_CONFIG
    max_steps: int = 200
    log_every: int = 20
    eval_every: int = 0
    eval_at_start: bool = True
    max_valid_examples: int = 2000
    select_by: str = "last"
    recall_k: int = 10
    recall_beam: int = 20
    recall_users: int = 1000
    patience: int = 0
    save_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = True
    seed: int = 1234
    device: str = "auto"
    torch_threads: int = 0
    progress: bool = True
    record_shard_keys: bool = False
    scheduler_run_id: str = ""
    tracking: bool = tracking_field()

    @classmethod
    def section(cls) -> str:
        return "sft_train"

    @classmethod
    def _section_of(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A pipeline file (no sft_train step can be in one: the fine-tune runs outside Spark)
        gives the `train:` keys of its ablation step, so `sft_train` trains the model and budget
        the pipeline's ablation trains, plus the shared `output_root`."""
        steps = data.get("steps")
        if cls.section() in data or not isinstance(steps, list):
            return super()._section_of(data)
        ablations = [s for s in steps if isinstance(s, dict) and s.get("stage") == "ablation"]
        if len(ablations) != 1:
            raise ConfigError(f"the pipeline file has {len(ablations)} ablation steps, whose "
                              "`train:` keys sft_train would take: give sft_train a file of its "
                              "own or an `sft_train:` section")
        keys = dict(ablations[0].get("train") or {})
        if "output_root" in data:
            keys.setdefault("output_root", data["output_root"])
        return keys

    @property
    def loss_gamma(self) -> float:
        """The γ of the chosen loss (0 for ce)."""
        return {"focal": self.focal_gamma, "mile": self.mile_gamma}.get(self.loss, 0.0)

    @property
    def strategy_name(self) -> str:
        return parse_strategy(self.strategy).name

    def table_uri(self, name: str) -> str:
        """Path of a table for `deltalake`: catalog names cannot be read without Spark."""
        ref = self.ref(name)
        return ref.removeprefix("file:") if ref.startswith("file:/") else ref

    def runs_root(self) -> str:
        """`<output_root>/sft_runs`: one folder per strategy, one run folder in each."""
        return runs_root(self.output_root)

    def fixed_run_dir(self) -> str:
        """`output_dir`, else `<runs_root>/<strategy>/<scheduler_run_id>`, else "" (the folder
        is then keyed by the inputs: `hourglass.train.runs.run_dir_of`)."""
        if self.output_dir:
            return self.output_dir
        if self.scheduler_run_id:
            return str(strategy_dir(self.runs_root(), self.strategy_name)
                       / run_folder_name(self.scheduler_run_id))
        return ""

    def objective_key(self) -> str:
        """How a folder keyed by its inputs says it learns another objective (loss, given
        prefix): two objectives on the same inputs never resume or skip each other's run. (A
        scheduler's run id names one run per strategy; `output_dir` is the user's choice.)"""
        return objective_key(self.loss, self.loss_gamma, self.given_prefix)

    def ds_config_path(self) -> str:
        """A file at the path given, else the packaged config of that file name."""
        p = Path(self.deepspeed_config)
        if p.is_file() or p.is_absolute() or len(p.parts) > 1:
            return str(p)
        return str(deepspeed_config_file(self.deepspeed_config) or p)

    def validate(self) -> None:
        parse_strategy(self.strategy).validate(key="strategy")
        for key in ("sft_table", "sids_table"):
            require(bool(getattr(self, key)), key, "must not be empty")
            require(is_path(self.ref(getattr(self, key))), key,
                    "the trainer reads Delta by path (deltalake): set output_root or give a path")
        require(bool(self.output_dir or self.output_root), "output_dir",
                "is required when output_root is empty")
        require(run_folder_name(self.scheduler_run_id) not in (".", ".."), "scheduler_run_id",
                "must name a folder")
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_steps",
                    "log_every", "keep_checkpoints"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        require(self.hidden_size % self.num_heads == 0, "num_heads",
                f"must divide hidden_size {self.hidden_size}")
        require(self.max_seq_len >= 8, "max_seq_len", "must be >= 8")
        for key in ("eval_every", "save_every", "max_valid_examples", "torch_threads"):
            require(getattr(self, key) >= 0, key, "must be >= 0 (0 = off / automatic)")
        require(self.loss_on in ("target", "all_items"), "loss_on",
                "must be target or all_items")
        require(self.given_prefix >= 0, "given_prefix", "must be >= 0 (0 = off)")
        require(self.prompt_mode in PROMPT_MODES, "prompt_mode",
                f"must be one of {', '.join(PROMPT_MODES)}")
        require(self.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}")
        for key in ("focal_gamma", "mile_gamma"):
            gamma = getattr(self, key)
            require(math.isfinite(gamma) and gamma >= 0, key, f"must be >= 0 (got {gamma})")
        require(self.select_by in ("last", "valid_recall"), "select_by",
                "must be last or valid_recall")
        if self.select_by == "valid_recall":
            require(self.eval_every >= 1, "eval_every",
                    "must be >= 1 with select_by valid_recall: it is how often Recall is checked")
            require(self.recall_k >= 1 and self.recall_users >= 1, "recall_k",
                    "recall_k and recall_users must be >= 1")
            require(self.recall_beam >= self.recall_k, "recall_beam",
                    f"must be >= recall_k ({self.recall_k}): a beam returns that many SIDs")
        require(self.patience >= 0, "patience", "must be >= 0 (0 = no early stopping)")
        require(self.patience == 0 or self.select_by == "valid_recall", "patience",
                "needs select_by valid_recall (it counts checks without a better Recall)")
        require(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")
        require(not self.model or Path(self.model).exists(), "model",
                f"no local model folder {self.model!r} (hub downloads are off; give a path)")
        require(Path(self.ds_config_path()).is_file(), "deepspeed_config",
                f"no such file {self.deepspeed_config!r}, and not a packaged config "
                f"({', '.join(deepspeed_config_names())})")


LAUNCHER_FLAGS = ("--local_rank", "--local-rank")


def parse_train_args(argv: list[str]) -> TrainConfig:
    """`TrainConfig.from_args` after dropping what the deepspeed/torchrun launchers inject.

    `--local_rank=N` comes from the deepspeed launcher (LOCAL_RANK is in the environment too);
    `--deepspeed` and `--deepspeed_config PATH` from pyspark's DeepspeedTorchDistributor, whose
    path we keep as `deepspeed_config`.
    """
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--deepspeed":
            continue
        if arg.startswith(LAUNCHER_FLAGS):
            skip = "=" not in arg and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            continue
        out.append(arg)
    return TrainConfig.from_args(out, "hourglass-sft-train")
