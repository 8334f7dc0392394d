# Helpers shared by the DeepSpeed launcher scripts (sourced, not run). They ship in the wheel
# (hourglass/resources/launchers; `hourglass-sft-launch` runs them) and need no checkout: every
# rank runs `python -m hourglass.train` from the installed package.
# Sets PYTHON and OUTPUT_DIR defaults; defines count_gpus, check_hostfile and run_logged.

if [[ -z "${PYTHON:-}" ]]; then
  # hourglass-sft-launch sets PYTHON to its own interpreter; from a checkout, its dev venv
  if [[ -x "$PWD/.venv/bin/python" ]]; then PYTHON="$PWD/.venv/bin/python"; else PYTHON=python3; fi
fi
OUTPUT_DIR="${OUTPUT_DIR:-$PWD/build/deepspeed/$(date -u +%Y%m%dT%H%M%SZ)}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"

count_gpus() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  else
    echo 0
  fi
}

# A hostfile line is `hostname slots=N`; a typo here makes DeepSpeed start the wrong world size.
check_hostfile() {
  local bad
  bad="$(grep -vE '^[[:space:]]*(#.*)?$' "$1" | grep -vE '^[[:space:]]*[A-Za-z0-9_.:-]+[[:space:]]+slots=[1-9][0-9]*[[:space:]]*$' || true)"
  if [[ -n "$bad" ]]; then
    echo "malformed hostfile line(s) in $1 (want 'hostname slots=N'):" >&2
    echo "$bad" >&2
    exit 2
  fi
}

# Write NAME=value for each set variable named, for DeepSpeed to export to every remote rank.
write_ds_env() {
  local file="$1"; shift
  : > "$file"
  local name
  for name in "$@"; do
    if [[ -n "${!name:-}" ]]; then echo "$name=${!name}" >> "$file"; fi
  done
}

# Print the command, then run it with stdout and stderr also written to OUTPUT_DIR/launcher.log.
run_logged() {
  local out="$1"; shift
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@"; echo
    return 0
  fi
  mkdir -p "$out"
  echo "launch: $*" | tee "$out/launcher.log"
  set +e
  "$@" 2>&1 | tee -a "$out/launcher.log"
  local rc=${PIPESTATUS[0]}
  set -e
  echo "exit status $rc; log: $out/launcher.log" >&2
  return "$rc"
}
