#!/usr/bin/env bash
# Build the hourglass wheel into $HOURGLASS_BUILD_DIR/dist and print its path.
# Usage: deploy/spark-submit/build_wheel.sh
# shellcheck source=deploy/spark-submit/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

dist="$BUILD_DIR/dist"
mkdir -p "$ROOT/build"
# setuptools builds in the source tree (build/lib and an egg-info, both git-ignored): one build
# at a time, and from a clean build/lib, which would otherwise still hold deleted modules.
exec 8>"$ROOT/build/.wheel.lock"
flock 8
rm -rf "$dist" "$ROOT/build/lib" "$ROOT"/build/bdist.* && mkdir -p "$dist"
"$TOOLS_PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$dist" "$ROOT" >&2
wheel="$(ls "$dist"/hourglass-*.whl)"
echo "$wheel"
