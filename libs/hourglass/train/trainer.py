"""DeepSpeed SFT of a causal LM on SID sequences (paper eq. 4): loss on the target SID only.

The training loss is cross-entropy, focal or MiLe (`loss`, `hourglass.train.losses`); the
validation loss is always cross-entropy.

One process per rank (the `deepspeed` launcher, torchrun, or pyspark's
DeepspeedTorchDistributor). Rank 0 pins the table versions and every rank reads its own shard of
`sft_examples` from the Delta log. The batch order is a pure function of (seed, rank, step), so a
run resumed from `checkpoints/<latest>` continues with exactly the batches it would have seen.
The run folder is keyed by the inputs (`hourglass.train.runs`); a finished run of the same
inputs is skipped. Outputs in it (laid out by `hourglass.train.layout`): `checkpoints/`, `final/`
(a Hugging Face model + tokenizer + `hourglass_sft.json`), `metrics.jsonl`, `run.json` (table
versions, codebook id, config) and `train_result.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.config import ConfigError
from hourglass.errors import InputError
from hourglass.logs import log
from hourglass.sft.format import uses_query
from hourglass.sft.tokenizer import (
    BACKBONE,
    WORDS,
    QueryIds,
    TokenIds,
    query_vocabulary,
    sid_vocabulary,
)
from hourglass.tracking import Run, tracked_run
from hourglass.train.batches import collate, encode_examples, real_tokens, target_tokens
from hourglass.train.config import TrainConfig
from hourglass.train.data import (
    SHARD_COLUMNS,
    batch_indices,
    prompt_modes_of,
    read_shard,
    read_strategy_columns,
)
from hourglass.train.ds_config import finish_ds_config, load_ds_config
from hourglass.train.layout import (
    CHECKPOINTS_DIR,
    FINAL_DIR,
    META_FILE,
    METRICS_FILE,
    RESULT_FILE,
    RUN_FILE,
    SHARDS_DIR,
)
from hourglass.train.losses import batch_loss
from hourglass.train.runs import RunPlan, finished_result, plan_run
from hourglass.train.selection import Best, RecallProbe, recall_probe

MODEL_ARTIFACT = "model"  # the exported model in the fine-tune's MLflow run

__all__ = ["TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    strategy: str
    world_size: int
    start_step: int
    steps: int
    train_loss: float
    valid_loss_start: float | None
    valid_loss_end: float | None
    train_tokens: int
    tokens_per_s: float
    seconds: float
    model_dir: str
    sft_version: int
    sids_version: int
    codebook_id: str = ""
    scheduler_run_id: str = ""
    skipped: bool = False  # this exact run had finished before: nothing was trained
    mlflow_run_id: str = ""  # rank 0's tracked run, and its logged model
    mlflow_model_uri: str = ""
    stopped_step: int | None = None  # the last step trained (< steps when stopped early)
    selected_step: int | None = None  # select_by valid_recall: the step exported
    valid_recall: float | None = None  # its validation Recall@recall_k

    @classmethod
    def from_record(cls, data: dict[str, Any], **changes: Any) -> TrainResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**data, **changes}.items() if k in known})


def skipped_result(plan: RunPlan, done: dict[str, Any], max_steps: int,
                   announce: bool = True) -> TrainResult:
    """The answer for a run that already trained `max_steps` on these inputs: its record
    (`announce`: log it; one rank of many is enough)."""
    if announce:
        log.info("%s already trained %d steps on these inputs: skipped", plan.run_dir, max_steps)
    return TrainResult.from_record(done, skipped=True)


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as every launcher exports them; (0, 1, 0) alone."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def _setup_process(cfg: TrainConfig, local_rank: int) -> str:
    """Seeds, device and CPU threads (ranks on one host share its cores)."""
    import torch

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    env = os.environ
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500"), ("RANK", "0"),
                       ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        env.setdefault(key, value)  # started without a launcher: a world of one
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not cuda:
        raise RuntimeError("device=cuda but no GPU is visible")
    if cuda:
        torch.cuda.set_device(local_rank)
        return "cuda"
    # torchrun names it LOCAL_WORLD_SIZE, the deepspeed launcher LOCAL_SIZE
    local_world = int(env.get("LOCAL_WORLD_SIZE") or env.get("LOCAL_SIZE") or 1)
    torch.set_num_threads(cfg.torch_threads or max(1, (os.cpu_count() or 1) // local_world))
    return "cpu"


def _plan(cfg: TrainConfig, rank: int) -> tuple[RunPlan, dict[str, Any] | None]:
    """Rank 0 decides the run folder and the inputs it trains on (the recorded ones on resume)
    and writes run.json; every rank gets the same plan, and the recorded result when this exact
    run had already finished."""
    import torch.distributed as dist

    box: list[Any] = [None]
    if rank == 0:
        plan = plan_run(cfg)
        done = finished_result(plan, cfg.max_steps) if cfg.resume else None
        if done is None:
            run_dir = Path(plan.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / RUN_FILE).write_text(json.dumps(
                {**plan.record(), "config": cfg.to_dict()}, indent=1))
        box[0] = (plan, done)
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _reduce(values: list[float], op: str = "sum") -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.tolist()


def valid_loss(engine: Any, enc: Any, fallback: Any, pad_id: int, micro: int,
               device: str) -> float | None:
    """Mean target-token cross-entropy over every rank's valid rows, whatever the training
    `loss`: model selection and runs trained with different losses stay comparable. All ranks
    run equal forward counts (ZeRO-3 gathers parameters collectively), padding with zero-weight
    batches."""
    import torch

    own = (len(enc) + micro - 1) // micro
    n_batches = int(_reduce([own], "max")[0])
    total, tokens = 0.0, 0
    engine.eval()
    with torch.no_grad():
        for b in range(n_batches):
            real = b < own
            src = enc if real else fallback
            batch = collate(src, range(b * micro, min(len(src), (b + 1) * micro)) if real
                            else [0], pad_id, device)
            loss = engine(**batch).loss.float().item()
            if real:
                n = target_tokens(batch)
                total, tokens = total + loss * n, tokens + n
    engine.train()
    total, tokens = _reduce([total, tokens])
    return total / tokens if tokens else None


def _save(engine: Any, ckpt_dir: Path, step: int, keep: int, rank: int) -> None:
    import torch.distributed as dist

    engine.save_checkpoint(str(ckpt_dir), tag=f"step_{step}", client_state={"step": step})
    dist.barrier()
    if rank == 0:
        tags = sorted((p for p in ckpt_dir.glob("step_*") if p.is_dir()),
                      key=lambda p: int(p.name.split("_")[1]))
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def export_model(engine: Any, tokenizer: Any, out: Path, zero_stage: int, rank: int,
                 meta: dict[str, Any]) -> None:
    """Write a plain Hugging Face folder (gathering ZeRO-3 partitions first) on rank 0."""
    import deepspeed
    import torch.distributed as dist

    params = list(engine.module.parameters())
    ctx = (deepspeed.zero.GatheredParameters(params, modifier_rank=None) if zero_stage == 3
           else _Null())
    with ctx:
        if rank == 0:
            state = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
            out.mkdir(parents=True, exist_ok=True)
            engine.module.save_pretrained(str(out), state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(str(out))
            (out / META_FILE).write_text(json.dumps(meta, indent=1))
    dist.barrier()


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) one fine-tune; every rank returns the same result."""
    import deepspeed
    import torch

    rank, world, local_rank = dist_env()
    device = _setup_process(cfg, local_rank)
    deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    ds_raw, settings = load_ds_config(cfg.ds_config_path(), device)
    ds_dict = finish_ds_config(ds_raw, cfg.max_steps, world)
    plan, done = _plan(cfg, rank)
    if done is not None:
        out = skipped_result(plan, done, cfg.max_steps, announce=rank == 0)
        if rank == 0:  # the launcher's parent reads this invocation's answer from the file
            (Path(plan.run_dir) / RESULT_FILE).write_text(json.dumps(asdict(out), indent=1))
        return out
    lineage = {f"hourglass.{k}": v for k, v in plan.record().items()}
    track_run = (tracked_run(cfg.tracking, cfg.output_root or cfg.output_dir,
                             f"sft {cfg.strategy_name}", "sft_train",
                             {**lineage, "hourglass.run_dir": plan.run_dir})
                 if rank == 0 else contextlib.nullcontext(Run()))
    with track_run as track:
        track.params(cfg.to_dict())
        track.params(ds_dict, prefix="deepspeed.")
        return _fit(cfg, plan, rank, world, device, settings, ds_dict, track)


def check_prompt_mode(cfg: TrainConfig, sft_version: int | None) -> None:
    """Refuse `sft_examples` built for another prompt mode, in one line, before any row is
    encoded (the launcher checks it too, before it starts a rank)."""
    modes = prompt_modes_of(cfg.table_uri(cfg.sft_table), cfg.strategy_name, sft_version)
    if modes != {cfg.prompt_mode}:
        raise InputError(f"{cfg.sft_table} v{sft_version} rows of {cfg.strategy_name!r} were "
                         f"built with prompt_mode {', '.join(sorted(modes))}, this fine-tune "
                         f"asks for {cfg.prompt_mode}: rebuild them (build_sft_data "
                         f"prompt_mode={cfg.prompt_mode}) or set prompt_mode to match")


def query_words_of(cfg: TrainConfig, sft_version: int | None) -> list[str] | None:
    """The query words a query prompt mode adds to the vocabulary: none for a pretrained
    backbone (its tokenizer splits queries), the training split's words for the from-scratch
    model (every rank reads the same table version, so every rank builds the same vocabulary);
    None without queries."""
    if not uses_query(cfg.prompt_mode):
        return None
    if cfg.model:
        return []
    _, rows = read_strategy_columns(cfg.table_uri(cfg.sft_table), cfg.strategy_name,
                                    ["split", "query"], sft_version)
    return query_vocabulary(q for s, q in zip(rows["split"], rows["query"], strict=True)
                            if s == "train")


def _fit(cfg: TrainConfig, plan: RunPlan, rank: int, world: int, device: str, settings: Any,
         ds_dict: dict[str, Any], track: Run) -> TrainResult:
    """Read the shard, train (or resume), export the model; rank 0 logs to `track`."""
    import deepspeed

    run_dir, strategy = Path(plan.run_dir), cfg.strategy_name
    ckpt_dir = run_dir / CHECKPOINTS_DIR
    pins = plan.record()

    from hourglass.train.model import load_tokenizer_and_model

    _, sid_rows = read_strategy_columns(cfg.table_uri(cfg.sids_table), strategy,
                                        ["item_id", "tokens"], pins["sids_version"])
    check_prompt_mode(cfg, pins["sft_version"])
    query_vocab = query_words_of(cfg, pins["sft_version"])
    tokenizer, model = load_tokenizer_and_model(cfg, sid_vocabulary(sid_rows["tokens"]),
                                                query_vocab)
    ids = TokenIds(tokenizer)
    queries = (QueryIds(tokenizer, BACKBONE if cfg.model else WORDS)
               if uses_query(cfg.prompt_mode) else None)
    columns = (*SHARD_COLUMNS, *(("query",) if queries is not None else ()))
    shard = read_shard(cfg.table_uri(cfg.sft_table), strategy, rank, world, pins["sft_version"],
                       columns)
    enc_train = encode_examples(shard.where_split("train"), ids, cfg.max_seq_len,
                                label_history=cfg.loss_on == "all_items",
                                given_prefix=cfg.given_prefix, queries=queries)
    valid_rows = shard.where_split("valid")
    cap = -(-cfg.max_valid_examples // world)
    enc_valid = encode_examples({k: v[:cap] for k, v in valid_rows.items()}, ids, cfg.max_seq_len,
                                given_prefix=cfg.given_prefix, queries=queries)
    if cfg.record_shard_keys:
        (run_dir / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        keys = list(zip(*(shard.columns[c] for c in ("user_id", "split", "target_item_id")),
                        strict=True))
        (run_dir / SHARDS_DIR / f"rank_{rank}.json").write_text(json.dumps(
            {"version": shard.version, "total_rows": shard.total_rows, "keys": keys}))
    if _reduce([len(enc_train) == 0], "max")[0]:
        raise RuntimeError(f"a rank has no train rows of {strategy!r} in {cfg.sft_table}: "
                           f"{shard.total_rows} rows for {world} ranks")
    if ids.unknown:
        log.warning("%d prompt/target tokens are not in the SID vocabulary of sids_version %s",
                    ids.unknown, pins["sids_version"])
    if queries is not None and queries.unknown and rank == 0:
        log.info("%d query words of valid rows are not in the training queries' vocabulary "
                 "(<unk>)", queries.unknown)

    if cfg.select_by == "valid_recall" and settings.zero_stage == 3:
        raise ConfigError("select_by valid_recall decodes with each rank's whole model: use a "
                          "ZeRO stage 0-2 config (stage 3 partitions the parameters)")
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                           config=ds_dict)
    start = 0
    if cfg.resume and (ckpt_dir / "latest").exists():
        path, client = engine.load_checkpoint(str(ckpt_dir))
        if path is None:
            raise RuntimeError(f"could not load the checkpoint named by {ckpt_dir}/latest")
        start = int(client["step"])
        if rank == 0:
            log.info("resumed %s at step %d from %s", strategy, start, path)
    micro, accum, pad = settings.micro_batch, settings.grad_accum, ids.special.pad
    v_start = (valid_loss(engine, enc_valid, enc_train, pad, micro, device)
               if cfg.eval_at_start and start == 0 else None)
    probe = (recall_probe(cfg, engine.module, tokenizer, sid_rows, valid_rows, world, device,
                          queries)
             if cfg.select_by == "valid_recall" else None)
    best = Best.load(run_dir) if start > 0 and probe is not None else Best()
    result = _loop(cfg, engine, enc_train, enc_valid, start, micro, accum, pad, device, rank,
                   world, run_dir, track, probe, best)
    if probe is not None and best.state is not None:
        engine.module.load_state_dict(best.state)  # training is over: export the chosen step
    v_end = valid_loss(engine, enc_valid, enc_train, pad, micro, device)
    meta = {**pins, "steps": cfg.max_steps, "world_size": world, "loss": cfg.loss,
            "loss_gamma": cfg.loss_gamma, "given_prefix": cfg.given_prefix,
            "prompt_mode": cfg.prompt_mode,
            **({"query_tokens": queries.kind, "max_query_tokens": queries.max_tokens}
               if queries is not None else {}),
            "valid_loss": v_end,
            "selected_step": best.step, f"valid_recall@{cfg.recall_k}": best.recall}
    export_model(engine, tokenizer, run_dir / FINAL_DIR, settings.zero_stage, rank, meta)
    track.metrics({"valid_loss_start": v_start, "valid_loss": v_end}, cfg.max_steps)
    track.artifacts(run_dir / FINAL_DIR, MODEL_ARTIFACT)
    out = TrainResult(strategy=strategy, world_size=world, start_step=start,
                      steps=cfg.max_steps, train_loss=result["loss"], valid_loss_start=v_start,
                      valid_loss_end=v_end, train_tokens=int(result["tokens"]),
                      tokens_per_s=result["tokens_per_s"], seconds=result["seconds"],
                      model_dir=str(run_dir / FINAL_DIR), sft_version=plan.sft_version,
                      sids_version=plan.sids_version, codebook_id=plan.codebook_id,
                      scheduler_run_id=plan.scheduler_run_id, mlflow_run_id=track.run_id,
                      mlflow_model_uri=track.artifact_uri(MODEL_ARTIFACT),
                      stopped_step=int(result["stopped_step"]), selected_step=best.step,
                      valid_recall=best.recall)
    if rank == 0:
        (run_dir / RESULT_FILE).write_text(json.dumps(asdict(out), indent=1))
        log.info("trained %s: %s", strategy, out)
    return out


def _loop(cfg: TrainConfig, engine: Any, enc_train: Any, enc_valid: Any, start: int,
          micro: int, accum: int, pad: int, device: str, rank: int, world: int, run_dir: Path,
          track: Run, probe: RecallProbe | None, best: Best) -> dict[str, float]:
    """Steps `start`..`max_steps` (fewer when `probe`'s Recall stops improving for `patience`
    checks); returns the last window's loss, the last step and the throughput. Every
    `eval_every` steps and at the end, `probe` scores the model and `best` keeps the best."""
    from tqdm import tqdm

    seed = cfg.seed * 1000 + rank
    last = start
    win_loss = win_tok = 0.0
    tokens_all, last_loss = 0.0, float("nan")
    t0 = time.perf_counter()
    metrics = open(run_dir / METRICS_FILE, "a") if rank == 0 else None  # noqa: SIM115
    bar = tqdm(total=cfg.max_steps, initial=start, disable=rank != 0 or not cfg.progress,
               mininterval=5.0, file=sys.stderr, desc=f"sft {cfg.strategy_name}")
    try:
        for step in range(start, cfg.max_steps):
            for m in range(accum):
                idx = batch_indices(len(enc_train), micro, seed, step * accum + m)
                batch = collate(enc_train, idx, pad, device)
                loss = batch_loss(engine, batch, cfg.loss, cfg.loss_gamma)
                engine.backward(loss)
                engine.step()
                n = target_tokens(batch)
                win_loss += loss.float().item() * n
                win_tok += n
                tokens_all += real_tokens(batch)
            done = step + 1
            bar.update(1)
            rec: dict[str, float] = {}
            if done % cfg.log_every == 0 or done == cfg.max_steps:
                s_loss, s_tok, s_all = _reduce([win_loss, win_tok, tokens_all])
                last_loss = s_loss / max(s_tok, 1)
                rec = {"train_loss": last_loss, "lr": engine.get_lr()[0],
                       "tokens_per_s": s_all / max(time.perf_counter() - t0, 1e-9)}
                win_loss = win_tok = 0.0
                if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.max_steps:
                    rec["valid_loss"] = valid_loss(engine, enc_valid, enc_train, pad, micro,
                                                   device)
            stop = False
            if probe is not None and (done % cfg.eval_every == 0 or done == cfg.max_steps):
                hits, users = _reduce([probe.hits(), len(probe)])
                recall = hits / max(users, 1)
                rec[f"valid_recall@{cfg.recall_k}"] = recall
                stop = best.offer(done, recall, engine.module, run_dir, rank, cfg.patience)
            if rec and metrics:
                track.metrics(rec, done)
                metrics.write(json.dumps({"step": done, **rec}) + "\n")
                metrics.flush()
                bar.set_postfix(loss=f"{last_loss:.3f}")
                log.info("step %d/%d %s", done, cfg.max_steps, json.dumps(rec))
            last = done
            if (cfg.save_every and done % cfg.save_every == 0) or done == cfg.max_steps or stop:
                _save(engine, run_dir / CHECKPOINTS_DIR, done, cfg.keep_checkpoints, rank)
            if stop:
                if rank == 0:
                    log.info("%s: no better valid Recall@%d in %d checks: stopped at step %d "
                             "(best %.4f at step %s)", cfg.strategy_name, cfg.recall_k,
                             cfg.patience, done, best.recall, best.step)
                break
    finally:
        bar.close()
        if metrics:
            metrics.close()
    seconds = time.perf_counter() - t0
    total_tokens = _reduce([tokens_all])[0]
    return {"loss": last_loss, "tokens": total_tokens, "seconds": seconds, "stopped_step": last,
            "tokens_per_s": total_tokens / max(seconds, 1e-9)}
