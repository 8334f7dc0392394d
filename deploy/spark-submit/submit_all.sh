#!/usr/bin/env bash
# Run the pipeline stage by stage with spark-submit, in dependency order (the order of
# deploy/resources/pipeline.job.yml and of the Airflow DAG): each Spark stage is
# `jobs/pipeline.py --only <stage>` on the pipeline config; the DeepSpeed fine-tune runs through
# deploy/deepspeed/ with the trainer's own config file.
#
#   deploy/spark-submit/submit_all.sh CONFIG OUTPUT_ROOT
#   SFT_CONFIG=sft.yaml SFT_LAUNCHER=multi HOSTFILE=... MASTER_ADDR=... \
#       deploy/spark-submit/submit_all.sh configs/cluster.yaml s3a://bucket/hourglass
#   SFT_LAUNCHER: single (default), multi, or none (stop after build_sft_data)
#   SFT_CONFIG:   config file with the trainer's keys (section `sft_train`) [CONFIG]
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
if [[ $# -ne 2 ]]; then
  echo "usage: $0 CONFIG OUTPUT_ROOT" >&2
  exit 2
fi
config="$1"; root="$2"

for stage in ingest embed_items train_codebooks encode_items rewrite_sids hourglass_stats build_sft_data; do
  echo "== $stage" >&2
  "$here/submit.sh" pipeline --config "$config" --output_root "$root" --only "$stage"
done
sft_args=(--config "${SFT_CONFIG:-$config}" --output_root "$root")
case "${SFT_LAUNCHER:-single}" in
  none) exit 0 ;;
  single) "$ROOT/deploy/deepspeed/launch_single_node.sh" "${sft_args[@]}" ;;
  multi) "$ROOT/deploy/deepspeed/launch_multi_node.sh" "${sft_args[@]}" ;;
  *) echo "SFT_LAUNCHER must be single, multi or none" >&2; exit 2 ;;
esac
for stage in evaluate report; do
  echo "== $stage" >&2
  "$here/submit.sh" pipeline --config "$config" --output_root "$root" --only "$stage"
done
