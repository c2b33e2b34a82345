#!/usr/bin/env bash
# Install GaussianIP into the current Python environment (safe to run twice).
#
#   bash install.sh                                   # the package, its dependencies, test tools
#   THREESTUDIO_ROOT=/path/to/threestudio bash install.sh
#                                                     # ...and link the extension into threestudio
#
# It never installs or builds threestudio itself, and it keeps an installed torch as it is
# (a CUDA build stays a CUDA build). PYTHON selects the interpreter (default: python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

say() { printf '[install] %s\n' "$*"; }

if "$python" -c "import torch, torchvision" 2>/dev/null; then
    say "keeping installed torch $("$python" -c 'import torch; print(torch.__version__)')"
else
    say "installing torch and torchvision"
    "$python" -m pip install torch torchvision
fi

say "installing gaussianip (editable) and its dependencies"
"$python" -m pip install -e "$repo[test]"

if [ -n "${THREESTUDIO_ROOT:-}" ]; then
    bash "$repo/scripts/link_threestudio.sh" "$THREESTUDIO_ROOT"
fi

"$python" -c "import gaussianip; print('[install] gaussianip', gaussianip.__version__, 'is importable')"
