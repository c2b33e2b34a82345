#!/usr/bin/env bash
# Round 6 of the performance work (BENCHMARKS.md) on one GPU, as one background job that
# outlives a device call (device tool: carry .whl/). Each step logs into /tmp/r6.
#   bash scripts/gpu_round6.sh start     # starts the job (setsid) and returns
#   bash scripts/gpu_round6.sh wait S    # waits up to S seconds for the job, then packs
#                                        # /tmp/r6 into $OUT/r6.tgz (call again to go on)
# Steps: gsplat's build (and its kernels packed for the next machine); the paper preset at
# fractions with a profile and the whole paper preset in one `gaussianip run`, uncapped
# (the memory plan picks the large-GPU switches on an H200); then the whole run again
# under an 8 GiB cap (the small plan).
set -uo pipefail
cd "$(dirname "$0")/.."
r6=/tmp/r6
case "${1:-}" in
    start)
        mkdir -p "$r6"
        setsid nohup bash -c "
            export OUT=$r6
            bash scripts/gpu_perf.sh gsplat packgsplat
            TAG=_large MEMCAP= bash scripts/gpu_perf.sh fractions paperrun
            TAG=_small MEMCAP=8 bash scripts/gpu_perf.sh paperrun
            touch $r6/DONE" > "$r6/job.log" 2>&1 < /dev/null &
        echo "round 6 started" ;;
    wait)
        end=$(( $(date +%s) + ${2:-540} ))
        while [ ! -f "$r6/DONE" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
        [ -f "$r6/DONE" ] && echo "round 6 done" || echo "round 6 still running"
        nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
        tail -5 "$r6/job.log"
        tar -C "$r6" -czf "${OUT:-/tmp}/r6.tgz" --exclude='*.tgz' . && ls -la "${OUT:-/tmp}/r6.tgz"
        [ -f "$r6/gsplat_ext.tgz" ] && cp "$r6/gsplat_ext.tgz" "${OUT:-/tmp}/" ;;
    *) echo "usage: $0 start | wait SECONDS" >&2; exit 2 ;;
esac
