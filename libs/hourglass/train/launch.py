"""Ways to start the trainer: `deepspeed` launcher, torchrun, a plain process, or Spark.

- `deepspeed --num_gpus N jobs/sft_train.py --config FILE` (or `-m hourglass.train`): the
  DeepSpeed launcher; with a hostfile it spans nodes (deploy/deepspeed/launch_*.sh).
- `run_training(cfg, launcher=...)`: the same from Python, as the ablation stage does; the run's
  `train_result.json` is the answer, so the parent never shares a process group with ranks.
- `hourglass.spark.distributor.run_with_distributor(cfg, ...)`: on a Spark cluster, pyspark's
  DeepspeedTorchDistributor starts torchrun in barrier tasks (one per node, `localMode=False`)
  or on the driver (`localMode=True`); the ranks run `train` and read their shards from Delta.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hourglass.logs import log
from hourglass.train.config import TrainConfig, parse_train_args
from hourglass.train.layout import LOG_FILE, RESULT_FILE

LAUNCHERS = ("deepspeed", "torchrun", "python")
# The trainer's own log line at every log step: run_training echoes it, so a parent that runs
# several fine-tunes (the ablation, the demo) shows how far each is rather than minutes of quiet.
PROGRESS_MARK, PROGRESS_WIDTH = "INFO hourglass: step ", 160


def free_port() -> int:
    """A port nobody listens on now: concurrent runs on one host must not share a rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher_command(config_file: str, launcher: str = "deepspeed", num_procs: int = 1,
                     master_port: int | None = None) -> list[str]:
    """The argv that starts `num_procs` ranks of `python -m hourglass.train --config FILE`."""
    port = str(master_port or free_port())
    py = sys.executable
    if launcher == "deepspeed":
        return [py, "-m", "deepspeed.launcher.runner", "--num_gpus", str(num_procs),
                "--master_port", port, "--module", "hourglass.train", "--config", config_file]
    if launcher == "torchrun":
        return [py, "-m", "torch.distributed.run", "--nproc_per_node", str(num_procs),
                "--master_port", port, "-m", "hourglass.train", "--config", config_file]
    if launcher == "python":
        if num_procs != 1:
            raise ValueError("launcher 'python' runs one process; use deepspeed or torchrun")
        return [py, "-m", "hourglass.train", "--config", config_file]
    raise ValueError(f"unknown launcher {launcher!r}; known: {LAUNCHERS}")


def run_training(cfg: TrainConfig, launcher: str = "deepspeed", num_procs: int = 1,
                 master_port: int | None = None, log_file: str | None = None) -> dict[str, Any]:
    """Train in child processes; return the run's `train_result.json` as a dict (a finished run
    of the same inputs is not trained again: its result comes back with `skipped` true)."""
    from hourglass.train.runs import finished_result, plan_run

    # Pin the folder and inputs here, so the ranks cannot see a commit made after this point
    # and this process reads the answer from the folder they wrote.
    plan = plan_run(cfg)
    done = finished_result(plan, cfg.max_steps)
    if done is not None:
        # A retried task or an unchanged night: the ranks would only find the same record (and
        # each start costs torch, DeepSpeed and a process group), so answer from it here.
        from hourglass.train.trainer import skipped_result

        return dataclasses.asdict(skipped_result(plan, done, cfg.max_steps))
    from hourglass.train.trainer import check_prompt_mode

    check_prompt_mode(cfg, plan.sft_version)  # before any rank starts
    cfg = dataclasses.replace(cfg, output_dir=plan.run_dir, sft_version=plan.sft_version,
                              sids_version=plan.sids_version)
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=run_dir) as fh:
        json.dump(cfg.to_dict(), fh)
        config_file = fh.name
    port = master_port or free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    env.setdefault("DS_ACCELERATOR", "cpu" if not _has_cuda() else "cuda")
    cmd = launcher_command(config_file, launcher, num_procs, port)
    log_path = Path(log_file) if log_file else run_dir / LOG_FILE
    with open(log_path, "a") as log_fh:
        log_fh.write("launch: " + " ".join(cmd) + "\n")
        log_fh.flush()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:  # everything to the run's log; its step lines to ours too
            log_fh.write(line)
            if PROGRESS_MARK in line:
                log.info("%s: step %s", cfg.strategy_name,
                         line.split(PROGRESS_MARK, 1)[1].strip()[:PROGRESS_WIDTH])
        proc.wait()
    Path(config_file).unlink(missing_ok=True)
    freed = remove_shm_buffers(env["MASTER_ADDR"], port)
    if freed:
        log.info("removed %d DeepSpeed shared-memory buffers of port %d", freed, port)
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-40:]
        raise RuntimeError(f"training {cfg.strategy_name} failed (exit {proc.returncode}); "
                           f"log {log_path}:\n" + "\n".join(tail))
    return json.loads((run_dir / RESULT_FILE).read_text())


SHM_DIR = Path("/dev/shm")
SHM_BUFFER = "deepspeed_allreduce_buffer"


def remove_shm_buffers(addr: str, port: int, shm_dir: Path = SHM_DIR) -> int:
    """Unlink the shared-memory allreduce buffers DeepSpeed's CPU ranks made for this run.

    Each CPU rank creates `/dev/shm/deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>`
    (66 MB; DeepSpeed's `ops/csrc/cpu/comm/shm.cpp`) and never unlinks it, so every fine-tune
    left that much RAM behind in tmpfs until reboot (6.5 GB after a day of tests here). The run
    is over when this is called, and the port names only its files. Returns how many went."""
    prefix = f"{SHM_BUFFER}_{os.getuid()}_{addr}_{port}_"
    gone = 0
    for f in shm_dir.glob(prefix + "*"):
        if f.name[len(prefix):].isdigit():
            f.unlink(missing_ok=True)
            gone += 1
    return gone


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> None:
    """`python -m hourglass.train` / `jobs/sft_train.py`: parse, train, print the result."""
    from dataclasses import asdict

    from hourglass.config import ConfigError
    from hourglass.logs import setup_logging
    from hourglass.train.trainer import train

    setup_logging()
    try:
        cfg = parse_train_args(sys.argv[1:] if argv is None else argv)
        cfg.preflight()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    result = train(cfg)
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({"job": "hourglass-sft-train", "result": asdict(result)}, indent=2))
