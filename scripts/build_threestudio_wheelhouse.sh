#!/usr/bin/env bash
# Download into .whl-ts/ (git-ignored) the packages that `import threestudio` (v0.2.3) needs
# at module level and the GPU image lacks, for a real `launch.py` run on the device machine
# (scripts/gpu_launch_threestudio.sh). wandb (with its OpenTelemetry tree) is not carried:
# threestudio only imports it, so that run puts an import stand-in first on sys.path, like
# tinycudann and nvdiffrast (tests/threestudio_stubs). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl-ts
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl-ts \
    nerfacc==0.5.3 controlnet_aux==0.0.10 kornia==0.9.0 kornia_rs==0.2.0 trimesh==5.2.0 \
    libigl==2.5.1 typeguard==4.6.0 taming-transformers-rom1504==0.0.6 importlib_metadata \
    ipython==8.12.3 backcall jedi parso matplotlib-inline pexpect ptyprocess pickleshare \
    prompt_toolkit wcwidth stack_data asttokens executing pure_eval traitlets decorator
# envlight is published as a source archive only: build its (pure-Python) wheel here.
python3 -m pip wheel --no-deps -w .whl-ts envlight==0.1.0
ls -la .whl-ts
