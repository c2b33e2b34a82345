#!/usr/bin/env bash
# Download the wheels the GPU machine lacks into .whl/ (git-ignored), for the device tool's
# `carry`. The GPU image (Python 3.12, x86-64) already has torch, numpy, scipy, pillow,
# imageio, pytorch-lightning, safetensors, jaxtyping, ninja; these are the rest, at the
# versions our pyproject pins. imageio-ffmpeg (the videos of `gaussianip run`) at 0.7.0: its
# manylinux2014 wheel, ffmpeg included, is 30 MB, where 0.8's is 68 MB, too large to carry.
# Run from the repository root:
#     bash scripts/build_gpu_wheelhouse.sh
# then, on the GPU machine:
#     python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#     export PYTHONPATH=/tmp/site:$PWD/custom
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl \
    gsplat==1.5.3 plyfile==1.1.5 smplx==0.1.28 omegaconf==2.3.0 \
    diffusers==0.30.3 transformers==4.48.3 huggingface_hub==0.25.2 tokenizers==0.21.4 lpips==0.1.4 \
    imageio-ffmpeg==0.7.0
# omegaconf 2.3 needs antlr4 4.9.3, which is published as a source archive only: build its
# (pure-Python) wheel here.
python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -la .whl
