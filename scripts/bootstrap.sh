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
python -m pip install -q --disable-pip-version-check -r "$req" -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
python -c "import owlfinder, torch, transformers, gradio" >/dev/null
