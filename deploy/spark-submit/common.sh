# Settings shared by the spark-submit scripts (sourced, not run). Override any of them from the
# environment; nothing here is repeated in another file.
#   HOURGLASS_BUILD_DIR  where the wheel, the slim venv and the packed archive are cached
#                        (default build/spark-submit, git-ignored)
#   PYTHON_BOOT          interpreter the slim venv is made from; executors must have the same
#                        Python at the same path (venv-pack ships packages, not the interpreter)
#   TOOLS_PYTHON         interpreter that has `pip` and `venv_pack` (default .venv/bin/python)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${HOURGLASS_BUILD_DIR:-$ROOT/build/spark-submit}"
PYTHON_BOOT="${PYTHON_BOOT:-python3}"
if [[ -z "${TOOLS_PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then TOOLS_PYTHON="$ROOT/.venv/bin/python"; else TOOLS_PYTHON=python3; fi
fi
ARCHIVE="${HOURGLASS_ARCHIVE:-$BUILD_DIR/hourglass-venv.tar.gz}"
JARS_DIR="${HOURGLASS_JARS_DIR:-$ROOT/.jars}"

# A hash of everything that goes into the archive: package sources and data, packaging
# metadata (pyproject.toml, setup.py), requirements.
source_hash() {
  (cd "$ROOT" && find libs setup.py pyproject.toml requirements -type f \
      -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*' \
      | LC_ALL=C sort | xargs sha256sum
   echo "${EXTRA_REQUIREMENTS:-}") | sha256sum | cut -c1-16
}
