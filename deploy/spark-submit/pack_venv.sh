#!/usr/bin/env bash
# Build a slim virtualenv (base + Spark requirements + the hourglass wheel) and pack it with
# venv-pack into $ARCHIVE, for `spark-submit --archives ARCHIVE#environment`.
#
# Slim because executors need only what the stages import: the dev venv (CUDA torch, DeepSpeed,
# test tools) is several GB. pyspark itself is left out: the cluster's Spark puts its own
# pyspark.zip and py4j on every Python worker's path, and a second copy would be ~450 MB of
# jars in each archive. venv-pack cannot pack editable installs, hence the wheel.
# requirements/embed.txt is in: embed_items runs on the executors with `backend: onnx` (an ONNX
# export of the encoder, ONNX Runtime, no torch; ~0.1 GB). So is requirements/track.txt: a driver
# running from the archive (cluster mode, and client mode by default) logs its MLflow run.
# Stages whose executors run torch (embed_items with backend torch, encode_items with
# device=cuda) need more:
# EXTRA_REQUIREMENTS="requirements/train.txt" adds those files (GBs).
# The archive is rebuilt only when the package sources or requirements change (a stamp records
# their hash), so a second run takes a second. Usage: deploy/spark-submit/pack_venv.sh [--force]
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mkdir -p "$BUILD_DIR" "$(dirname "$ARCHIVE")"
# One packer at a time (a test and a person may both ask); the second then finds it up to date.
exec 9>"$ARCHIVE.lock"
flock 9
stamp="$ARCHIVE.sha"
want="$(source_hash)"
if [[ "${1:-}" != "--force" && -f "$ARCHIVE" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "up to date: $ARCHIVE" >&2
  echo "$ARCHIVE"
  exit 0
fi

wheel="$("$(dirname "${BASH_SOURCE[0]}")/build_wheel.sh")"
venv="$BUILD_DIR/venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check
     -c "$ROOT/requirements/constraints.txt")
# The third-party packages change only with requirements/: keep the venv while they match.
extra=()
for req in ${EXTRA_REQUIREMENTS:-}; do extra+=(-r "$ROOT/$req"); done
reqs_hash="$( (cat "$ROOT"/requirements/*.txt; "$PYTHON_BOOT" -VV; echo "${EXTRA_REQUIREMENTS:-}") \
    | sha256sum | cut -c1-16)"
if [[ ! -f "$venv/.reqs" || "$(cat "$venv/.reqs")" != "$reqs_hash" ]]; then
  rm -rf "$venv"
  "$PYTHON_BOOT" -m venv "$venv"
  # Spark requirements minus pyspark; delta-spark's only other dependency is importlib_metadata.
  spark_reqs="$BUILD_DIR/spark-no-pyspark.txt"
  grep -viE '^(pyspark|delta-spark)[=<>! ]' "$ROOT/requirements/spark.txt" > "$spark_reqs"
  delta_pin="$(grep -iE '^delta-spark[=<>! ]' "$ROOT/requirements/spark.txt")"
  "${pip[@]}" -r "$ROOT/requirements/base.txt" -r "$spark_reqs" -r "$ROOT/requirements/embed.txt" \
      -r "$ROOT/requirements/track.txt" "${extra[@]}" importlib_metadata
  "${pip[@]}" --no-deps "$delta_pin"
  echo "$reqs_hash" > "$venv/.reqs"
fi
"${pip[@]}" --no-deps --force-reinstall "$wheel"
rm -f "$ARCHIVE"
# PYTHON_PREFIX: where the interpreter lives on the cluster, when not where PYTHON_BOOT lives here.
"$TOOLS_PYTHON" -m venv_pack --quiet --prefix "$venv" --output "$ARCHIVE" \
    ${PYTHON_PREFIX:+--python-prefix "$PYTHON_PREFIX"}
echo "$want" > "$stamp"
echo "packed $(du -h "$ARCHIVE" | cut -f1) into $ARCHIVE" >&2
echo "$ARCHIVE"
