"""`gaussianip bench` on the CPU with the tiny prior: the JSON it promises (timing itself is
never asserted: that is the benchmark's job on a GPU)."""

import argparse

from gaussianip.engine.bench import add_arguments, run_bench

TINY = [
    "system.prior.preset=tiny",  # after the bench's own `random`: the last value wins
    "system.stage1.steps=8",
    "system.reconstruction.steps=4",
    "system.reconstruction.batch_size=2",
]


def test_bench_reports_every_phase_and_the_profile():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", "gaussianip-tiny.yaml", "--device", "cpu",
                              "--stage1-fraction", "0.5", "--reconstruction-fraction", "0.5",
                              "--warmup", "1", "--profile", "1", *TINY])  # fmt: skip
    result = run_bench(args)
    phases = result["phases"]
    assert set(phases) == {"stage1", "vcr", "reconstruction"}
    s1 = phases["stage1"]
    assert s1["full_steps"] == 8 and s1["measured_steps"] == 3  # 4 sampled, 1 untimed
    assert s1["untimed_steps"] == 1
    assert s1["full_seconds_is"] == "projected"
    assert abs(s1["full_seconds"] - s1["ms_per_step"] * 8 / 1000) < 0.01
    assert phases["reconstruction"]["full_steps"] == 4
    vcr = phases["vcr"]  # the refinement by part, within its measured time
    assert {"encode", "denoise", "decode"} <= set(vcr["parts"])
    assert sum(vcr["parts"].values()) <= vcr["full_seconds"] + 0.01
    rec = phases["reconstruction"]  # 2 of 4 steps: the first (set-up) untimed, 1 timed
    assert rec["measured_steps"] == 1 and rec["untimed_steps"] == 1
    setup = result["setup"]
    assert setup["first_step_seconds"] > 0 and setup["reconstruction_first_step_seconds"] > 0
    assert setup["allocated_after_build_gib"] is None  # CUDA only
    total = sum(p["full_seconds"] for p in phases.values())
    assert abs(result["whole_method_seconds"] - total) < 0.2
    assert result["whole_method_is"] == "projected"
    ranges = result["stage1_profile"]["ranges_ms_per_step"]
    for name in ("stage1/render", "stage1/guidance", "stage1/backward",
                 "guidance/vae_encode", "guidance/unet_controlnet"):  # fmt: skip
        assert ranges[name]["host_ms"] > 0
    assert "reconstruction/render" in result["reconstruction_profile"]["ranges_ms_per_step"]
    # the outer range contains the inner ones
    assert ranges["stage1/guidance"]["host_ms"] >= ranges["guidance/unet_controlnet"]["host_ms"]
    assert result["settings"]["stage1_steps"] == 8


def test_a_phase_whose_steps_all_ran_counts_as_measured():
    import torch

    from gaussianip.engine.bench import _phase

    cpu = torch.device("cpu")
    whole = _phase(2.0, 97, 100, cpu, untimed=3)  # first step + 2 warm-up steps untimed
    assert whole["full_seconds_is"] == "measured" and whole["ms_per_step"] == round(2000 / 97, 2)
    assert whole["full_seconds"] == round(2.0 / 97 * 100, 2)
    part = _phase(2.0, 45, 2400, cpu, untimed=3)
    assert part["full_seconds_is"] == "projected"
