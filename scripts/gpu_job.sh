#!/usr/bin/env bash
# A GPU round as one background job that outlives a device call (the device tool ends a
# command after 10 minutes; a job started with setsid runs on while the machine is held).
#   bash scripts/gpu_job.sh start NAME SCRIPT   # runs `bash SCRIPT` with OUT=/tmp/NAME, returns
#   bash scripts/gpu_job.sh wait NAME SECONDS   # waits up to SECONDS for it, then packs
#                                               # /tmp/NAME into $OUT/NAME.tgz (call again to go on)
# A wait must come within the machine's idle time of the previous call (30 s).
set -uo pipefail
cd "$(dirname "$0")/.."
name="${2:?usage: gpu_job.sh start|wait NAME ...}"
dir="/tmp/$name"
case "${1:-}" in
    start)
        script="${3:?usage: gpu_job.sh start NAME SCRIPT}"
        mkdir -p "$dir"
        setsid nohup bash -c "OUT=$dir bash $script; touch $dir/DONE" > "$dir/job.log" 2>&1 < /dev/null &
        echo "$name started" ;;
    wait)
        end=$(( $(date +%s) + ${3:-540} ))
        while [ ! -f "$dir/DONE" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
        [ -f "$dir/DONE" ] && echo "$name done" || echo "$name still running"
        nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
        tail -5 "$dir/job.log"
        tar -C "$dir" -czf "${OUT:-/tmp}/$name.tgz" --exclude='*.tgz' . && ls -la "${OUT:-/tmp}/$name.tgz"
        [ -f "$dir/gsplat_ext.tgz" ] && cp "$dir/gsplat_ext.tgz" "${OUT:-/tmp}/" ;;
    *) echo "usage: $0 start NAME SCRIPT | wait NAME SECONDS" >&2; exit 2 ;;
esac
