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

# Link an entry into threestudio, never replacing a real file or folder of the user's.
link() {
    local target="$1" link_path="$2"
    if [ -L "$link_path" ] || [ ! -e "$link_path" ]; then
        ln -sfn "$target" "$link_path"
        say "linked $link_path -> $target"
    else
        say "WARNING: $link_path exists and is not a link; left it alone (move it away to link ours)"
    fi
}

if [ -n "${THREESTUDIO_ROOT:-}" ]; then
    root="$(cd "$THREESTUDIO_ROOT" 2>/dev/null && pwd)" || {
        echo "[install] error: THREESTUDIO_ROOT='$THREESTUDIO_ROOT' is not a folder." >&2
        echo "[install] Set it to your threestudio checkout (the folder with launch.py)." >&2
        exit 2
    }
    if [ ! -f "$root/launch.py" ] || [ ! -d "$root/threestudio" ]; then
        echo "[install] error: '$root' has no launch.py and threestudio/ folder." >&2
        echo "[install] Set THREESTUDIO_ROOT to a threestudio checkout (git clone of threestudio-project/threestudio)." >&2
        exit 2
    fi
    mkdir -p "$root/custom" "$root/load"
    link "$repo/custom/gaussianip" "$root/custom/gaussianip"
    for asset in "$repo"/load/*/; do
        asset="${asset%/}"
        link "$asset" "$root/load/$(basename "$asset")"
    done
fi

"$python" -c "import gaussianip; print('[install] gaussianip', gaussianip.__version__, 'is importable')"
