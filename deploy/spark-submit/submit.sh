#!/usr/bin/env bash
# Submit one hourglass job with spark-submit, shipping the packed venv with --archives and the
# Delta jars with --jars.
#
#   deploy/spark-submit/submit.sh <job> [--config FILE] [--key value ...]
#   e.g. SPARK_MASTER=yarn DEPLOY_MODE=cluster deploy/spark-submit/submit.sh encode_items \
#            --config configs/demo.yaml --output_root s3a://bucket/hourglass
#
# <job> is a file name in jobs/ without .py (ingest, embed_items, encode_items, ...). Everything
# after it goes to the job. Environment knobs (and those of common.sh):
#   SPARK_MASTER       default local[2]
#   DEPLOY_MODE        client (default) or cluster
#   SPARK_SUBMIT       the spark-submit to use (default: $SPARK_HOME/bin, else on PATH, else the
#                      one in the dev venv's pyspark)
#   DRIVER_PYTHON      client mode: driver interpreter (default: the archive unpacked here, so
#                      the driver runs exactly what the executors run)
#   SPARK_LOG_LEVEL    driver log level (default WARN)
#   SPARK_SUBMIT_ARGS  extra spark-submit arguments, e.g. "--executor-memory 8g --num-executors 20"
#   DRY_RUN=1          print the spark-submit command instead of running it
# In cluster mode a local `--config FILE` is shipped with --files and passed as its file name.
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 <job> [job args...]; jobs: $(cd "$ROOT/jobs" && ls ./*.py | xargs -n1 basename | sed 's/\.py$//' | tr '\n' ' ')" >&2
  exit 2
fi
job="$1"; shift
app="$ROOT/jobs/$job.py"
[[ -f "$app" ]] || { echo "no such job: $app" >&2; exit 2; }

master="${SPARK_MASTER:-local[2]}"
mode="${DEPLOY_MODE:-client}"
if [[ "${DRY_RUN:-0}" != "1" ]]; then
  "$(dirname "${BASH_SOURCE[0]}")/pack_venv.sh" >/dev/null
fi

if [[ -z "${SPARK_SUBMIT:-}" ]]; then
  if [[ -n "${SPARK_HOME:-}" ]]; then SPARK_SUBMIT="$SPARK_HOME/bin/spark-submit"
  elif command -v spark-submit >/dev/null 2>&1; then SPARK_SUBMIT="$(command -v spark-submit)"
  else
    # The pip-installed pyspark of the dev venv is a complete Spark; point SPARK_HOME at it.
    SPARK_HOME="$("$TOOLS_PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    export SPARK_HOME
    SPARK_SUBMIT="$SPARK_HOME/bin/spark-submit"
  fi
fi
jars="$(find "$JARS_DIR" -maxdepth 1 -name '*.jar' | LC_ALL=C sort | paste -sd, -)"
[[ "$jars" == *delta-spark* ]] || { echo "no Delta jars in $JARS_DIR: run make setup" >&2; exit 2; }

# The Spark application name says the stage: `pipeline --only encode_items` → hourglass-encode_items.
name="hourglass-$job"
prev=""
for arg in "$@"; do
  if [[ "$prev" == "--only" ]]; then name="hourglass-$arg"; fi
  prev="$arg"
done
args=(--master "$master" --deploy-mode "$mode" --name "$name"
      --archives "$ARCHIVE#environment"
      --jars "$jars"
      --conf "spark.log.level=${SPARK_LOG_LEVEL:-WARN}")
# The settings every job needs live in spark-defaults.conf beside this script (the DAG reads it
# too); each `key value` line becomes one --conf.
while read -r key value; do
  [[ -z "$key" || "$key" == \#* ]] && continue
  args+=(--conf "$key=$value")
done < "$(dirname "${BASH_SOURCE[0]}")/spark-defaults.conf"
if [[ "$mode" == "client" ]]; then
  if [[ -z "${DRIVER_PYTHON:-}" ]]; then
    # Unpack the archive once per build, for the driver (in cluster mode YARN/K8s do this).
    # One unpacker at a time (submissions from one checkout may run side by side); the next one
    # finds it up to date.
    driver_env="$BUILD_DIR/driver-env"
    if [[ "${DRY_RUN:-0}" != "1" ]]; then
      exec 8>"$driver_env.lock"
      flock 8
      if [[ ! -f "$driver_env/.from" || "$(cat "$driver_env/.from")" != "$(cat "$ARCHIVE.sha" 2>/dev/null)" ]]; then
        rm -rf "$driver_env" && mkdir -p "$driver_env"
        tar -xzf "$ARCHIVE" -C "$driver_env"
        cat "$ARCHIVE.sha" > "$driver_env/.from"
      fi
      exec 8>&-
    fi
    DRIVER_PYTHON="$driver_env/bin/python"
  fi
  args+=(--conf "spark.pyspark.driver.python=$DRIVER_PYTHON")
  if [[ "$master" == local || "$master" == local\[* ]]; then
    # local[N] runs the executor inside the driver JVM, whose working folder is not where Spark
    # unpacks --archives; its Python workers use the same unpacked archive as the driver.
    args+=(--conf "spark.pyspark.python=$DRIVER_PYTHON")
  fi
fi
# Cluster mode: the driver does not inherit this shell's environment, so the variables of
# driver-env.list set here (MLflow's tracking URI and experiment) go to it as driver environment,
# under the YARN and the Kubernetes key (each ignores the other's).
if [[ "$mode" == "cluster" ]]; then
  for var in $(grep -v '^#' "$(dirname "${BASH_SOURCE[0]}")/driver-env.list"); do
    [[ -n "${!var:-}" ]] || continue
    args+=(--conf "spark.yarn.appMasterEnv.$var=${!var}"
           --conf "spark.kubernetes.driverEnv.$var=${!var}")
  done
fi
# shellcheck disable=SC2206  # word splitting of SPARK_SUBMIT_ARGS is intended
args+=(${SPARK_SUBMIT_ARGS:-})

# Cluster mode runs the driver on another host, which cannot read a config on this disk: ship a
# local one with --files (YARN puts it in the driver's working folder) and name it by its file
# name there. A URI with a scheme (s3a://, abfss://, hdfs://, dbfs:/, file:) is passed as is.
job_args=("$@")
if [[ "$mode" == "cluster" ]]; then
  for i in "${!job_args[@]}"; do
    arg="${job_args[$i]}"
    if [[ "$arg" == --config=* ]]; then conf="${arg#--config=}"
    elif [[ "$arg" == --config ]] && (( i + 1 < ${#job_args[@]} )); then conf="${job_args[$((i + 1))]}"
    else continue
    fi
    [[ "$conf" =~ ^[A-Za-z][A-Za-z0-9+.-]+: ]] && continue
    [[ -f "$conf" ]] || { echo "config file not found: $conf" >&2; exit 2; }
    args+=(--files "$(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")")
    if [[ "$arg" == --config ]]; then job_args[i + 1]="$(basename "$conf")"
    else job_args[i]="--config=$(basename "$conf")"
    fi
  done
fi

cmd=("$SPARK_SUBMIT" "${args[@]}" "$app" "${job_args[@]}")
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "${cmd[@]}"
