#!/usr/bin/env bash
# On the GPU machine (device tool): threestudio's own launch.py runs the tiny config in a
# real threestudio v0.2.3 checkout. Carry `.whl`, `.whl-ts` (scripts/build_gpu_wheelhouse.sh,
# scripts/build_threestudio_wheelhouse.sh) and the checkout `threestudio-src`, then:
#     bash scripts/gpu_launch_threestudio.sh [config] [overrides...]
# Writes the trial folder to $OUT/threestudio-run. tinycudann, nvdiffrast and wandb are
# the import stand-ins of tests/threestudio_stubs (threestudio imports them at module
# level; a Gaussian-splat run never calls them); they come last on the path.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="${1:-custom/gaussianip/configs/gaussianip-tiny.yaml}"
shift || true
install() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target /tmp/site "$@"; }
[ -d /tmp/site/gsplat ] || install "$repo"/.whl/*.whl
[ -d /tmp/site/nerfacc ] || install "$repo"/.whl-ts/*.whl
export PYTHONPATH="/tmp/site:$repo/custom:$repo/tests/threestudio_stubs"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}"
root="$repo/threestudio-src"
bash "$repo/scripts/link_threestudio.sh" "$root"
out="${OUT:-/tmp}/threestudio-run"
cd "$root"
python3 launch.py --config "$config" --train --gpu 0 exp_root_dir="$out" "$@"
find "$out" -maxdepth 4 | sort | head -80
