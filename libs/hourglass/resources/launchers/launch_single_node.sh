#!/usr/bin/env bash
# DeepSpeed fine-tune on ONE node with several GPUs (or CPU processes when no GPU is present).
#
#   NUM_GPUS=4 OUTPUT_DIR=runs/sft hourglass-sft-launch \
#       --config configs/demo.yaml --output_root demo-output [--key value ...]
# (hourglass-sft-launch, a command of the wheel, runs this script; from a checkout it is also
# deploy/deepspeed/launch_single_node.sh.) Everything after the command goes verbatim to each
# rank's `python -m hourglass.train` (its typed config says which keys exist). The launcher's own
# knobs are environment variables, so no setting is made in two places:
#   NUM_GPUS     processes to start (default: GPUs seen by nvidia-smi; 2 CPU ranks without one)
#   MASTER_PORT  rendezvous port (default: a free one, so two runs on one host do not collide)
#   OUTPUT_DIR   where launcher.log is written (default ./build/deepspeed/<UTC time>)
#   PYTHON       interpreter with hourglass[train] installed (default: hourglass-sft-launch's
#                own; run directly, ./.venv/bin/python, else python3)
#   DRY_RUN=1    print the command instead of running it
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=libs/hourglass/resources/launchers/common.sh
source "$HERE/common.sh"

if [[ -z "${NUM_GPUS:-}" ]]; then
  NUM_GPUS="$(count_gpus)"
fi
if [[ "$NUM_GPUS" -eq 0 ]]; then
  # No GPU: DeepSpeed's CPU accelerator (gloo); two ranks still exercise sharding and all-reduce.
  export DS_ACCELERATOR=cpu
  NUM_GPUS="${CPU_RANKS:-2}"
fi

if [[ -z "${MASTER_PORT:-}" ]]; then
  MASTER_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
cmd=("$PYTHON" -m deepspeed.launcher.runner
     --num_gpus "$NUM_GPUS" --master_port "$MASTER_PORT"
     --module hourglass.train "$@")
run_logged "$OUTPUT_DIR" "${cmd[@]}"
