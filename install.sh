#!/usr/bin/env bash
# Sets up fan_mm on a fresh machine: pinned torch + OpenMMLab stack (mmcv 2.1.0 built
# with its ops, cached) and fan_mm itself, into the active Python environment.
# Options are passed through to scripts/install.py (see `bash install.sh --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
exec "$PYTHON" scripts/install.py "$@"
