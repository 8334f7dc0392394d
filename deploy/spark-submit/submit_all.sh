#!/usr/bin/env bash
# Run the Spark stages of the pipeline one after another with spark-submit, in dependency order
# (the same order as deploy/resources/pipeline.job.yml and the Airflow DAG); the DeepSpeed
# fine-tune runs through deploy/deepspeed/ (set SFT_LAUNCHER to skip it or pick a topology).
#
#   deploy/spark-submit/submit_all.sh --config configs/demo.yaml --output_root /data/hourglass
#   SFT_LAUNCHER=multi HOSTFILE=... MASTER_ADDR=... deploy/spark-submit/submit_all.sh ...
#   SFT_LAUNCHER: single (default), multi, or none (stop after build_sft_data)
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here="$(dirname "${BASH_SOURCE[0]}")"

for job in ingest embed_items train_codebooks encode_items hourglass_stats rewrite_sids build_sft_data; do
  echo "== $job" >&2
  "$here/submit.sh" "$job" "$@"
done
case "${SFT_LAUNCHER:-single}" in
  none) exit 0 ;;
  single) "$ROOT/deploy/deepspeed/launch_single_node.sh" "$@" ;;
  multi) "$ROOT/deploy/deepspeed/launch_multi_node.sh" "$@" ;;
  *) echo "SFT_LAUNCHER must be single, multi or none" >&2; exit 2 ;;
esac
for job in evaluate report; do
  echo "== $job" >&2
  "$here/submit.sh" "$job" "$@"
done
