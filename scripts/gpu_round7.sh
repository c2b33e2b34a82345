#!/usr/bin/env bash
# Round 7 of the performance work (BENCHMARKS.md), run as a background job:
#   bash scripts/gpu_job.sh start r7 scripts/gpu_round7.sh && bash scripts/gpu_job.sh wait r7 540
# (device tool: carry .whl and threestudio-src; a later call carries .whl-ts, which the
# threestudio step waits for). Steps: gsplat's build; the whole paper preset in one
# `gaussianip run`, uncapped (the large plan), from an empty inductor cache; threestudio's
# own launch.py on the same preset for the first half of stage 1 (1200 steps), on the
# kernels the run compiled.
cd "$(dirname "$0")/.."
bash scripts/gpu_perf.sh gsplat
rm -rf "${TORCHINDUCTOR_CACHE_DIR:-/tmp/gaussianip_inductor}"
TAG=_large MEMCAP= bash scripts/gpu_perf.sh paperrun
TS_ARGS="trainer.max_steps=1200" RUN_TIMEOUT=330 bash scripts/gpu_perf.sh tslaunch
