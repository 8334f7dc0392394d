#!/usr/bin/env bash
# Run the pipeline stage by stage with spark-submit, in dependency order (the order of
# deploy/resources/pipeline.job.yml and of the Airflow DAG): the SID stages are
# `jobs/pipeline.py --only <stage>` on the pipeline config; then the fine-tune path for one
# strategy: its SFT data, the DeepSpeed fine-tune through deploy/deepspeed/, its evaluation, and
# the report.
#
#   deploy/spark-submit/submit_all.sh CONFIG OUTPUT_ROOT [STRATEGY]
#   SFT_LAUNCHER=multi HOSTFILE=... MASTER_ADDR=... \
#       deploy/spark-submit/submit_all.sh configs/cluster.yaml /shared/hourglass/tables "topk(16)"
#   STRATEGY      the SID strategy to fine-tune (default topk(16)); one the config rewrites to
#   SFT_LAUNCHER  single (default), multi, or none (stop after the SID stages)
#   SFT_ARGS      more trainer flags (default: the packaged bf16 ZeRO-2 DeepSpeed config)
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 CONFIG OUTPUT_ROOT [STRATEGY]" >&2
  exit 2
fi
config="$1"; root="$2"; strategy="${3:-topk(16)}"

for stage in ingest embed_items train_codebooks encode_items rewrite_sids hourglass_stats; do
  echo "== $stage" >&2
  "$here/submit.sh" pipeline --config "$config" --output_root "$root" --only "$stage"
done
[[ "${SFT_LAUNCHER:-single}" == none ]] && exit 0
echo "== build_sft_data" >&2
"$here/submit.sh" build_sft_data --output_root "$root" --strategies "$strategy"
echo "== sft_train" >&2
# shellcheck disable=SC2206  # word splitting of SFT_ARGS is intended
sft_args=(--output_root "$root" --strategy "$strategy"
          ${SFT_ARGS:---deepspeed_config zero2_gpu_bf16.json})
case "${SFT_LAUNCHER:-single}" in
  single) "$ROOT/deploy/deepspeed/launch_single_node.sh" "${sft_args[@]}" ;;
  multi) "$ROOT/deploy/deepspeed/launch_multi_node.sh" "${sft_args[@]}" ;;
  *) echo "SFT_LAUNCHER must be single, multi or none" >&2; exit 2 ;;
esac
echo "== evaluate" >&2
"$here/submit.sh" evaluate --output_root "$root" --run_id "submit-$(date -u +%Y%m%dT%H%M%SZ)" \
    --strategies "$strategy"
echo "== report" >&2
"$here/submit.sh" report --output_root "$root"
