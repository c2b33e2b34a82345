#!/usr/bin/env bash
# Round 6 of the performance work (BENCHMARKS.md), run as a background job:
#   bash scripts/gpu_job.sh start r6 scripts/gpu_round6.sh && bash scripts/gpu_job.sh wait r6 530
# Steps: gsplat's build (and its kernels packed for the next machine); the paper preset at
# fractions with a profile and the whole paper preset in one `gaussianip run`, uncapped
# (the memory plan picks the large-GPU switches on an H200); then the whole run again
# under an 8 GiB cap (the small plan).
cd "$(dirname "$0")/.."
bash scripts/gpu_perf.sh gsplat packgsplat
TAG=_large MEMCAP= bash scripts/gpu_perf.sh fractions paperrun
TAG=_small MEMCAP=8 bash scripts/gpu_perf.sh paperrun
