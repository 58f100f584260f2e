#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian machine (idempotent; fast when already done).
#   bash scripts/bootstrap.sh         # runtime: ffmpeg + Python requirements + this package (editable)
#   bash scripts/bootstrap.sh --dev   # also Chromium (browser tests), pytest, ruff, playwright
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; [ "${1:-}" = "--dev" ] && dev=1

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)           # datasets' Audio feature decodes via torchcodec+ffmpeg
[ $dev = 1 ] && { command -v chromium >/dev/null 2>&1 || need+=(chromium); }  # Playwright can't download browsers here
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

req=requirements.txt; [ $dev = 1 ] && req=requirements-dev.txt
py=${PYTHON:-python}
# pip repeats two harmless warnings for every requirement: running as root, and a find-links folder named in
# this machine's pip configuration that does not exist ("Location '...' is ignored"). Show each once.
log=$(mktemp); trap 'rm -f "$log"' EXIT
rc=0; "$py" -m pip install -q --disable-pip-version-check -r "$req" -e . >"$log" 2>&1 || rc=$?
grep -v -e "Running pip as the 'root' user" -e "^WARNING: Location '.*' is ignored" "$log" >&2 || true
ignored=$(grep -o "^WARNING: Location '[^']*' is ignored" "$log" | sed "s/^WARNING: Location '\(.*\)' is ignored/\1/" | sort -u | paste -sd ' ' -) || true
[ -n "$ignored" ] && echo "note: pip's configuration names find-links locations that do not exist here, ignored: $ignored" >&2
[ $rc = 0 ] || { echo "error: pip install -r $req failed (exit $rc); see the lines above" >&2; exit $rc; }
"$py" -c "import owlfinder, torch, transformers, gradio" >/dev/null
