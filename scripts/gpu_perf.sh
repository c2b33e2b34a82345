#!/usr/bin/env bash
# Performance runs on one GPU, in one command (device tool: carry .whl/ from
# scripts/build_gpu_wheelhouse.sh). Each step writes its JSON/log into $OUT as it ends.
#   bash scripts/gpu_perf.sh [STEP ...]
# steps: gsplat pose s1cold s1warm s1model full cap anim repro whole fastwhole runwall
#        networks onepass onepasswhole gsplatcache warmup fractions coldfractions graphtests
#        packgsplat paperrun s1variant batch warmupboth tslaunch
# TAG=_name suffixes the files of fractions/coldfractions/paperrun/runwall (A/B in one call).
# MEMCAP=GIB caps fractions/coldfractions/paperrun/runwall (default 8; MEMCAP= runs uncapped,
# where the memory plan picks the large-GPU switches).
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
if [ -d .whl ] && [ ! -d /tmp/site/gsplat ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site:$PWD/custom"
tag="${TAG:-}"
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/gaussianip_inductor}"
cap_args=${MEMCAP-8}; cap_args=${cap_args:+--memory-cap-gib $cap_args}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(gsplat pose s1cold s1warm full)
bench() { python3 -m gaussianip bench "$@"; }
paper="--config ${PAPER_CONFIG:-configs/bench/paper.yaml}"
for step in "${steps[@]}"; do
    t0=$(date +%s)
    echo "=== $step"
    case "$step" in
        gsplat) python3 -c "from gsplat.cuda._backend import _C; print('gsplat built', _C is not None)" ;;
        pose) python3 -m pytest -q -p no:cacheprovider tests/test_pose.py -k "cuda or dense" \
                  tests/test_speedups.py -k "cuda or dense or fused" 2>&1 | tail -3 ;;
        s1cold) rm -rf "$TORCHINDUCTOR_CACHE_DIR"
                bench $paper --stage1-only --stage1-fraction 0.01 --profile 2 --out "$out/s1cold.json" ${S1_ARGS:-} > "$out/s1cold.log" 2>&1 ;;
        s1warm) bench $paper --stage1-only --stage1-fraction 0.01 --profile 2 --out "$out/s1warm.json" ${S1_ARGS:-} > "$out/s1warm.log" 2>&1 ;;
        s1model) bench $paper --stage1-only --stage1-fraction 0.01 --out "$out/s1model.json" \
                     system.prior.compile_scope=model ${S1_ARGS:-} > "$out/s1model.log" 2>&1 ;;
        full) bench $paper --stage1-fraction ${S1_FRACTION:-0.01} --reconstruction-fraction ${R_FRACTION:-0.03} \
                  --profile 2 --out "$out/full.json" ${S1_ARGS:-} > "$out/full.log" 2>&1 ;;
        cap) bench $paper --stage1-fraction ${S1_FRACTION:-0.01} --reconstruction-fraction ${R_FRACTION:-0.03} \
                 --memory-cap-gib 8 --out "$out/cap.json" ${S1_ARGS:-} > "$out/cap.log" 2>&1 ;;
        anim) python3 scripts/bench_animation.py > "$out/anim.json" 2> "$out/anim.log"; cat "$out/anim.json" ;;
        repro) python3 scripts/gpu_reproducibility.py --device cuda > "$out/repro.log" 2>&1; tail -20 "$out/repro.log" ;;
        whole) bench $paper --stage1-fraction 1 --reconstruction-fraction 1 --memory-cap-gib 8 \
                   --out "$out/whole.json" ${S1_ARGS:-} > "$out/whole.log" 2>&1 ;;
        fastwhole) bench --config configs/bench/fast.yaml --stage1-fraction 1 --reconstruction-fraction 1 \
                   --memory-cap-gib 8 --out "$out/fastwhole.json" ${S1_ARGS:-} > "$out/fastwhole.log" 2>&1 ;;
        # What a user feels: `gaussianip run` from the command to its summary line (the
        # paper preset with the random-weight prior; run it warm, after `full` or `whole`).
        runwall|paperrun)
                 # paperrun: the paper preset whatever PAPER_CONFIG says. Wall time from the
                 # command to its summary line: the log's first and last timestamps.
                 cfg="${PAPER_CONFIG:-configs/bench/paper.yaml}"; [ "$step" = paperrun ] && cfg=configs/bench/paper.yaml
                 log="$out/$step$tag.log"; dir="/tmp/gaussianip-$step$tag"
                 echo "start $(date +%s.%N)" > "$log"
                 timeout -s INT "${RUN_TIMEOUT:-590}" python3 -m gaussianip run --config "$cfg" \
                     --device cuda $cap_args --out "$dir" ${S1_ARGS:-} >> "$log" 2>&1
                 rc=$?; echo "end $(date +%s.%N) rc=$rc" >> "$log"
                 cp "$dir"/*/save/metrics.json "$out/${step}${tag}_metrics.json" 2>/dev/null
                 ls -la "$dir"/*/save "$dir"/* 2>/dev/null | head -40
                 tail -c 600 "$log" ;;
        # The stage-1 networks alone, switch by switch (eager / compiled / CUDA graphs / FP8).
        networks) timeout 400 python3 scripts/bench_networks.py --variants ${NET_VARIANTS:-eager,compile,rows12} \
                      > "$out/networks.jsonl" 2> "$out/networks.log"; cat "$out/networks.jsonl" ;;
        # The round-3 candidate (configs/bench/onepass.yaml) under the 8 GiB cap, cold.
        onepass) rm -rf "$TORCHINDUCTOR_CACHE_DIR"
                 bench --config configs/bench/onepass.yaml --stage1-fraction 0.005 --reconstruction-fraction 0.01 \
                     --memory-cap-gib 8 --profile 2 --out "$out/onepass.json" ${S1_ARGS:-} > "$out/onepass.log" 2>&1 ;;
        onepasswhole) bench --config configs/bench/onepass.yaml --stage1-fraction 1 --reconstruction-fraction 1 \
                          --memory-cap-gib 8 --out "$out/onepasswhole.json" ${S1_ARGS:-} > "$out/onepasswhole.log" 2>&1 ;;
        # gsplat's kernels built on an earlier machine (carry .gpucache/gsplat_ext.tgz).
        gsplatcache) tar -C / -xzf .gpucache/gsplat_ext.tgz && echo "gsplat kernels restored" ;;
        # What install.sh does on a GPU machine, from an empty inductor cache: the set-up
        # that moves from a fresh machine's first run to the install.
        warmup) rm -rf "$TORCHINDUCTOR_CACHE_DIR"
                python3 -m gaussianip warmup --config "${PAPER_CONFIG:-configs/bench/paper.yaml}" \
                    > "$out/warmup.log" 2>&1; tail -3 "$out/warmup.log" ;;
        # install.sh's warm-up for the paper preset in both memory plans, the two at once
        # (a machine lent for one call serves runs of either plan afterwards).
        warmupboth) rm -rf "$TORCHINDUCTOR_CACHE_DIR"
                python3 -m gaussianip warmup --config configs/bench/paper.yaml \
                    > "$out/warmup_large.log" 2>&1 &
                python3 -m gaussianip warmup --config configs/bench/paper.yaml \
                    system.memory.mode=small > "$out/warmup_small.log" 2>&1
                wait; tail -n 2 "$out"/warmup_*.log ;;
        # threestudio's own launch.py, the paper preset with the random-weight prior, timed
        # like paperrun (carry .whl-ts and threestudio-src; waits up to 15 min for them, as a
        # later device call brings them). TS_ARGS: more overrides (e.g. trainer.max_steps=1200
        # for the first half of stage 1). The trial folder stays in /tmp/tslaunch.
        tslaunch) end=$(( $(date +%s) + 900 ))
                while { [ ! -f threestudio-src/launch.py ] || [ ! -d .whl-ts ]; } && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
                log="$out/tslaunch.log"
                echo "start $(date +%s.%N)" > "$log"
                OUT=/tmp/tslaunch timeout -s INT "${RUN_TIMEOUT:-590}" bash scripts/gpu_launch_threestudio.sh \
                    custom/gaussianip/configs/gaussianip.yaml system.prior.preset=random \
                    system.face_analyser=stand-in system.reconstruction.lpips_pretrained=false ${TS_ARGS:-} >> "$log" 2>&1
                rc=$?; echo "end $(date +%s.%N) rc=$rc" >> "$log"
                cp /tmp/tslaunch/threestudio-run/*/*/save/metrics.json "$out/tslaunch_metrics.json" 2>/dev/null
                tail -c 600 "$log" ;;
        # After `warmup`: the first run's set-up on that machine, and the steps at fractions.
        fractions) bench $paper --stage1-fraction 0.005 --reconstruction-fraction 0.01 \
                       $cap_args --profile 2 --out "$out/fractions$tag.json" ${S1_ARGS:-} > "$out/fractions$tag.log" 2>&1 ;;
        # Stage 1 alone at fractions, with a profile: one variant of switches (S1_ARGS) a call.
        s1variant) bench $paper --stage1-only --stage1-fraction 0.005 $cap_args --profile 2 \
                       --out "$out/s1variant$tag.json" ${S1_ARGS:-} > "$out/s1variant$tag.log" 2>&1 ;;
        # The same from an empty inductor cache: a fresh machine's set-up, no warm-up.
        coldfractions) rm -rf "$TORCHINDUCTOR_CACHE_DIR"
                       bench $paper --stage1-fraction 0.005 --reconstruction-fraction 0.01 \
                           $cap_args --profile 2 --out "$out/coldfractions$tag.json" ${S1_ARGS:-} > "$out/coldfractions$tag.log" 2>&1 ;;
        # Our CUDA graphs (system.prior.cuda_graphs) against the plain path, on the GPU.
        graphtests) python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py 2>&1 | tail -4 ;;
        # gsplat's kernels for the next machine (carry .gpucache/gsplat_ext.tgz).
        packgsplat) tar -C / -czf "$out/gsplat_ext.tgz" root/.cache/torch_extensions && ls -la "$out/gsplat_ext.tgz" ;;
        # Caches for the next machine (carry .gpucache): gsplat's build and inductor's kernels.
        packcache) tar -C / -czf /tmp/caches.tgz root/.cache/torch_extensions "${TORCHINDUCTOR_CACHE_DIR#/}" 2>/dev/null
                   ls -la /tmp/caches.tgz; split -b 15M /tmp/caches.tgz "$out/cache.tgz." ;;
        unpackcache) [ -d .gpucache ] && cat .gpucache/cache.tgz.* | tar -C / -xzf - && echo "caches restored" ;;
        # Many avatars: 3 fast-preset rows through one batch worker (one prior load)
        # against 3 separate `gaussianip run`s (BATCH_ARGS shortens them, e.g.
        # "--stage1-steps 60 --reconstruction-steps 30 --ring-size 8"; --mode engine where
        # Ray is not installed). Run it warm (after `warmup` or `full`).
        batch) python3 scripts/bench_batch.py --out /tmp/gaussianip-batch ${BATCH_ARGS:-} \
                   > "$out/batch.log" 2>&1; rc=$?
               cp /tmp/gaussianip-batch/bench_batch.json "$out/batch.json" 2>/dev/null
               echo "rc=$rc"; tail -c 2500 "$out/batch.log" ;;
        *) echo "unknown step $step" ;;
    esac
    echo "=== $step rc=$? $(( $(date +%s) - t0 )) s"
    for f in "$out/$step$tag.json"; do
        [ -f "$f" ] && python3 -c "import json,sys; d=json.load(open('$f')); print(json.dumps({k: d.get(k) for k in ('setup','phases','whole_method_seconds','peak_memory')})[:3000])"
    done
    [ -f "$out/$step$tag.log" ] && tail -3 "$out/$step$tag.log"
done
