"""DeepSpeed JSON configs: load, validate the keys this trainer relies on, finish with run values.

DeepSpeed does not check top-level key names, so `"train_micro_batch_size_per_gpus": 64` would
silently train with the default; here an unknown key is an error naming it. Batch size, gradient
accumulation, learning rate and ZeRO stage live only in the JSON (one place); the only value the
trainer injects is the scheduler's `total_num_steps`, taken from its `max_steps`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hourglass.config import ConfigError

KNOWN_TOP_LEVEL = frozenset({
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
    "optimizer", "scheduler", "zero_optimization", "bf16", "fp16", "gradient_clipping",
    "steps_per_print", "wall_clock_breakdown", "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer", "communication_data_type", "prescale_gradients",
    "gradient_predivide_factor", "activation_checkpointing", "flops_profiler", "tensorboard",
    "csv_monitor", "wandb", "comms_logger", "checkpoint", "data_types", "memory_breakdown",
    "dump_state", "torch_autocast", "seq_parallel_communication_data_type", "aio",
})
OPTIMIZERS = ("Adam", "AdamW")
SCHEDULERS_WITH_TOTAL = ("WarmupDecayLR", "WarmupCosineLR")
SCHEDULERS = ("WarmupLR", *SCHEDULERS_WITH_TOTAL)


@dataclass(frozen=True)
class DsSettings:
    """The values the trainer reads back from a validated config."""

    micro_batch: int
    grad_accum: int
    lr: float
    zero_stage: int
    bf16: bool
    fp16: bool


def _fail(path: str, key: str, message: str) -> None:
    raise ConfigError(f"deepspeed config {path}: key '{key}': {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _enabled(cfg: dict[str, Any], key: str, path: str) -> bool:
    section = cfg.get(key, {})
    if not isinstance(section, dict) or set(section) - {"enabled", "loss_scale",
                                                        "initial_scale_power", "loss_scale_window",
                                                        "hysteresis", "min_loss_scale",
                                                        "immediate_grad_update"}:
        _fail(path, key, f"must be an object like {{\"enabled\": true}}, got {section!r}")
    enabled = section.get("enabled", False)
    if not isinstance(enabled, bool):
        _fail(path, f"{key}.enabled", "must be true or false")
    return enabled


def validate_ds_config(cfg: dict[str, Any], path: str = "<dict>", device: str = "cpu"
                       ) -> DsSettings:
    """Check names, types and ranges of what the trainer uses; return those values."""
    unknown = sorted(set(cfg) - KNOWN_TOP_LEVEL)
    if unknown:
        _fail(path, unknown[0], f"unknown top-level key(s) {unknown} (a typo fails silently "
              "in DeepSpeed)")
    micro = cfg.get("train_micro_batch_size_per_gpu")
    if not _is_int(micro) or micro < 1:
        _fail(path, "train_micro_batch_size_per_gpu", f"required integer >= 1, got {micro!r}")
    accum = cfg.get("gradient_accumulation_steps", 1)
    if not _is_int(accum) or accum < 1:
        _fail(path, "gradient_accumulation_steps", f"must be an integer >= 1, got {accum!r}")
    if "train_batch_size" in cfg and (not _is_int(cfg["train_batch_size"])
                                      or cfg["train_batch_size"] < 1):
        _fail(path, "train_batch_size", "must be an integer >= 1")
    opt = cfg.get("optimizer")
    if not isinstance(opt, dict) or opt.get("type") not in OPTIMIZERS:
        _fail(path, "optimizer.type", f"required, one of {OPTIMIZERS}")
    params = opt.get("params", {})
    lr = params.get("lr") if isinstance(params, dict) else None
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        _fail(path, "optimizer.params.lr", f"required number > 0, got {lr!r}")
    sched = cfg.get("scheduler")
    if sched is not None:
        if not isinstance(sched, dict) or sched.get("type") not in SCHEDULERS:
            _fail(path, "scheduler.type", f"must be one of {SCHEDULERS}")
        if "total_num_steps" in sched.get("params", {}):
            _fail(path, "scheduler.params.total_num_steps",
                  "is set by the trainer from max_steps; remove it from the JSON")
    zero = cfg.get("zero_optimization", {})
    stage = zero.get("stage", 0) if isinstance(zero, dict) else None
    if stage not in (0, 1, 2, 3):
        _fail(path, "zero_optimization.stage", f"must be 0, 1, 2 or 3, got {stage!r}")
    clip = cfg.get("gradient_clipping", 0.0)
    if not isinstance(clip, (int, float)) or isinstance(clip, bool) or clip < 0:
        _fail(path, "gradient_clipping", f"must be a number >= 0, got {clip!r}")
    bf16, fp16 = _enabled(cfg, "bf16", path), _enabled(cfg, "fp16", path)
    if bf16 and fp16:
        _fail(path, "bf16", "bf16 and fp16 cannot both be enabled")
    if device == "cpu" and (bf16 or fp16):
        _fail(path, "bf16" if bf16 else "fp16",
              "half precision is for GPUs; use an fp32 config (e.g. zero2_cpu_fp32.json) on CPU")
    return DsSettings(micro_batch=micro, grad_accum=accum, lr=float(lr), zero_stage=stage,
                      bf16=bf16, fp16=fp16)


def load_ds_config(path: str, device: str = "cpu") -> tuple[dict[str, Any], DsSettings]:
    """Read and validate a DeepSpeed JSON file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config key 'deepspeed_config': no such file {path}")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"deepspeed config {path}: not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"deepspeed config {path}: must hold a JSON object")
    return cfg, validate_ds_config(cfg, path, device)


def finish_ds_config(cfg: dict[str, Any], max_steps: int, world_size: int) -> dict[str, Any]:
    """A copy with the run's values: scheduler total steps and a consistent global batch."""
    out = copy.deepcopy(cfg)
    sched = out.get("scheduler")
    if sched and sched["type"] in SCHEDULERS_WITH_TOTAL:
        sched.setdefault("params", {})["total_num_steps"] = max_steps
    micro = out["train_micro_batch_size_per_gpu"]
    accum = out.get("gradient_accumulation_steps", 1)
    want = micro * accum * world_size
    if "train_batch_size" in out and out["train_batch_size"] != want:
        raise ConfigError(
            f"deepspeed config: train_batch_size {out['train_batch_size']} != micro batch "
            f"{micro} × accumulation {accum} × world size {world_size}; drop train_batch_size "
            "and let it follow")
    out["train_batch_size"] = want
    return out
