#!/usr/bin/env bash
# DeepSpeed fine-tune on SEVERAL nodes listed in a hostfile (see hostfile.example).
#
#   HOSTFILE=hostfile MASTER_ADDR=worker-1 OUTPUT_DIR=/shared/runs/sft \
#       hourglass-sft-launch --config cluster.yaml --strategy "topk(16)"
#
# (hourglass-sft-launch runs this script when HOSTFILE is set; from a checkout it is also
# deploy/deepspeed/launch_multi_node.sh.) Run it on the first host of the hostfile. Requirements,
# as DeepSpeed's multi-node launcher has them: passwordless ssh from this host to every host;
# pdsh installed (or LAUNCHER=openmpi with mpirun); the hourglass wheel installed in a virtualenv
# at the same path on every host (no checkout: each rank runs `python -m hourglass.train`); the
# Delta tables reachable from every host (cloud storage or a shared filesystem), since each rank reads its own shard of
# `sft_examples` straight from the table. Environment knobs:
#   HOSTFILE     required; `hostname slots=<GPUs>` lines
#   MASTER_ADDR  required; an address of the first host that every host can reach
#   MASTER_PORT  rendezvous port (default 29500)
#   LAUNCHER     pdsh (default), openmpi, mvapich or slurm
#   NUM_NODES    use only the first N hosts (default: all)
#   OUTPUT_DIR   where launcher.log is written (default ./build/deepspeed/<UTC time>)
#   PYTHON       interpreter with hourglass[train] installed, same path on every host
#   DRY_RUN=1    print the command instead of running it
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=libs/hourglass/resources/launchers/common.sh
source "$HERE/common.sh"

: "${HOSTFILE:?set HOSTFILE to a DeepSpeed hostfile (see deploy/deepspeed/hostfile.example)}"
: "${MASTER_ADDR:?set MASTER_ADDR to an address of the first host that all hosts reach}"
[[ -f "$HOSTFILE" ]] || { echo "hostfile not found: $HOSTFILE" >&2; exit 2; }
check_hostfile "$HOSTFILE"

cmd=("$PYTHON" -m deepspeed.launcher.runner
     --hostfile "$HOSTFILE" --master_addr "$MASTER_ADDR" --master_port "${MASTER_PORT:-29500}"
     --launcher "${LAUNCHER:-pdsh}")
if [[ -n "${NUM_NODES:-}" ]]; then
  cmd+=(--num_nodes "$NUM_NODES")
fi
# Remote ranks see only what the launcher exports: DeepSpeed forwards PYTHON*/NCCL* variables and
# the lines of the file named by DS_ENV_FILE (relative to the current folder or $HOME), so list
# there what the trainer relies on. EXTRA_ENV="A B" adds more variable names.
if [[ "${DRY_RUN:-0}" != "1" ]]; then
  mkdir -p "$OUTPUT_DIR"
  write_ds_env "$OUTPUT_DIR/deepspeed_env" HF_HUB_OFFLINE TRANSFORMERS_OFFLINE \
      TOKENIZERS_PARALLELISM DS_ACCELERATOR HOURGLASS_JARS_DIR ${EXTRA_ENV:-}
  export DS_ENV_FILE="$OUTPUT_DIR/deepspeed_env"
fi
cmd+=(--module hourglass.train "$@")
run_logged "$OUTPUT_DIR" "${cmd[@]}"
