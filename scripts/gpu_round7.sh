#!/usr/bin/env bash
# Round 7 of the performance work (BENCHMARKS.md), run as a background job:
#   bash scripts/gpu_job.sh start r7 scripts/gpu_round7.sh && bash scripts/gpu_job.sh wait r7 540
# (device tool: carry .whl; a later call carries .whl-ts and threestudio-src, which the
# threestudio step waits for). Steps: gsplat's build; `gaussianip warmup` of the paper
# preset for both memory plans (install.sh's warm-up, the two at once); the whole paper
# preset in one `gaussianip run`, uncapped (the large plan); the same in threestudio's own
# launch.py; the whole run again under an 8 GiB cap (the small plan).
cd "$(dirname "$0")/.."
bash scripts/gpu_perf.sh gsplat warmupboth
TAG=_large MEMCAP= bash scripts/gpu_perf.sh paperrun
bash scripts/gpu_perf.sh tslaunch
TAG=_small MEMCAP=8 bash scripts/gpu_perf.sh paperrun
