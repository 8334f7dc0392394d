#!/usr/bin/env bash
# Build the hourglass wheel into $HOURGLASS_BUILD_DIR/dist and print its path.
# Usage: deploy/spark-submit/build_wheel.sh
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

dist="$BUILD_DIR/dist"
rm -rf "$dist" && mkdir -p "$dist"
# setuptools writes build/lib and an egg-info beside the sources; both are git-ignored.
"$TOOLS_PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$dist" "$ROOT" >&2
wheel="$(ls "$dist"/hourglass-*.whl)"
echo "$wheel"
