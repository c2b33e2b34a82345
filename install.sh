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

torch_pair_works() { "$python" -c "import torch, torchvision" 2>/dev/null; }
if torch_pair_works; then
    say "keeping installed torch $("$python" -c 'import torch; print(torch.__version__)')"
else
    # A missing torchvision, or one built for another torch (its operators fail to
    # register at import): first try the torchvision of the installed torch, then a
    # matching pair from the package index.
    if "$python" -c "import torch" 2>/dev/null; then
        have="$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')"
        say "torch $have has no working torchvision; trying one built for it"
        "$python" -m pip install "torch==$have" torchvision || true
    fi
    if ! torch_pair_works; then
        say "installing a matching torch and torchvision"
        "$python" -m pip install --upgrade torch torchvision
    fi
    torch_pair_works || { echo "[install] error: torch and torchvision do not import together" >&2; exit 1; }
fi

say "installing gaussianip (editable) and its dependencies"
"$python" -m pip install -e "$repo[test]"

# Open3D (the mesh export's TSDF) loads the system's libusb-1.0 at import. Install it
# where it is missing and we may (root with apt); otherwise say what to install.
if ! "$python" -c "import open3d" 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        say "installing libusb-1.0-0 for Open3D (the mesh export)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0) \
            || say "warning: could not install libusb-1.0-0; export --format glb/obj needs it"
    else
        say "warning: open3d does not import (missing libusb-1.0?); export --format glb/obj" \
            "needs it: sudo apt-get install libusb-1.0-0"
    fi
fi

# gsplat compiles its CUDA kernels at first use (a minute or more). Where a GPU is present,
# do it now, once, so that the first run starts at once (cached in ~/.cache/torch_extensions).
if "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    say "building gsplat's CUDA kernels once (about a minute; cached for every later run)"
    "$python" -c "from gsplat.cuda._backend import _C; assert _C is not None" \
        || say "warning: gsplat's CUDA build failed; it will be retried at the first run"
    # torch.compile's kernels for the shipped configs, on random weights of the same
    # networks (no download): the first run then starts in seconds. GAUSSIANIP_WARMUP=0 skips.
    if [ "${GAUSSIANIP_WARMUP:-1}" != "0" ]; then
        say "compiling the shipped configs' GPU kernels once (a few minutes; cached in ~/.cache/gaussianip)"
        "$python" -m gaussianip warmup \
            || say "warning: the warm-up failed; the first run will compile at its first step"
    fi
fi

if [ -n "${THREESTUDIO_ROOT:-}" ]; then
    bash "$repo/scripts/link_threestudio.sh" "$THREESTUDIO_ROOT"
fi

"$python" -c "import gaussianip; print('[install] gaussianip', gaussianip.__version__, 'is importable')"
