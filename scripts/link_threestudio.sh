#!/usr/bin/env bash
# Link the extension into a threestudio checkout: custom/gaussianip and our load/ assets.
#     bash scripts/link_threestudio.sh /path/to/threestudio
# (install.sh calls this when THREESTUDIO_ROOT is set). Safe to run twice; a file or folder
# of the user's that is not one of our links is never replaced.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[install] %s\n' "$*"; }

root="$(cd "${1:?usage: link_threestudio.sh /path/to/threestudio}" 2>/dev/null && pwd)" || {
    echo "[install] error: '$1' is not a folder. Give your threestudio checkout (the folder with launch.py)." >&2
    exit 2
}
if [ ! -f "$root/launch.py" ] || [ ! -d "$root/threestudio" ]; then
    echo "[install] error: '$root' has no launch.py and threestudio/ folder." >&2
    echo "[install] Point THREESTUDIO_ROOT at a clone of threestudio-project/threestudio." >&2
    exit 2
fi

link() {
    local target="$1" link_path="$2"
    if [ -L "$link_path" ] || [ ! -e "$link_path" ]; then
        ln -sfn "$target" "$link_path"
        say "linked $link_path -> $target"
    else
        say "WARNING: $link_path exists and is not a link; left it alone (move it away to link ours)"
    fi
}

mkdir -p "$root/custom" "$root/load"
link "$repo/custom/gaussianip" "$root/custom/gaussianip"
for asset in "$repo"/load/*/; do
    [ -d "$asset" ] || continue
    asset="${asset%/}"
    link "$asset" "$root/load/$(basename "$asset")"
done
