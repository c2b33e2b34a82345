#!/usr/bin/env bash
# The GPU checks, in one command for the device machine (run from the repository root with
# the wheelhouse of scripts/build_gpu_wheelhouse.sh in .whl/). Results go to $OUT (or ./gpu_out).
#   - gsplat vs our PyTorch rasterizer: images, alphas, depths, gradients (gpu_parity.py)
#   - the preview command on CUDA (gsplat backend)
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/custom" PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, gsplat; print('torch', torch.__version__, 'gsplat', gsplat.__version__)"
start=$(date +%s)
python3 - <<'PY'
# Compile gsplat's CUDA code once (first use), timed separately.
import time, torch, gsplat
t0 = time.time()
m = torch.zeros(1, 3, device="cuda"); q = torch.tensor([[1.0, 0, 0, 0]], device="cuda")
s = torch.full((1, 3), 0.1, device="cuda"); o = torch.ones(1, device="cuda"); c = torch.ones(1, 3, device="cuda")
v = torch.eye(4, device="cuda")[None].clone(); v[0, 2, 3] = 2.0
K = torch.tensor([[[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]], device="cuda")
gsplat.rasterization(m, q, s, o, c, v, K, 32, 32)
torch.cuda.synchronize(); print(f"gsplat first call (compile) {time.time() - t0:.1f} s")
PY
python3 scripts/gpu_parity.py --out "$out/parity.json" 2>&1 | tee "$out/parity.log"
parity=${PIPESTATUS[0]}
rm -rf /tmp/preview_gpu
t0=$(date +%s)
python3 -m gaussianip preview --out /tmp/preview_gpu --device cuda
echo "preview on cuda: $(( $(date +%s) - t0 )) s (includes imports)"
cp /tmp/preview_gpu/views.png "$out/views_gpu.png" 2>/dev/null
echo "total $(( $(date +%s) - start )) s; parity exit $parity"
exit "$parity"
