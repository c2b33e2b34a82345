"""``gaussianip run`` with the tiny config: stage 1 end to end on the CPU."""

import subprocess
import sys

from gaussianip.gaussians import load_ply

CONFIG = "custom/gaussianip/configs/gaussianip-tiny.yaml"
SHORT = [
    "system.stage1.steps=6",
    "system.guidance.timestep_schedule_cfg.total_steps=6",
    "system.geometry.densify.refine_every=4",
    "system.geometry.densify.refine_start_iter=1",
]


def _run(tmp_path, *extra):
    cmd = [sys.executable, "-m", "gaussianip", "run", "--config", CONFIG, "--out", str(tmp_path)]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True)


def test_tiny_stage1_writes_its_outputs(tmp_path):
    done = _run(tmp_path, *SHORT)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    assert run_dir.name.startswith("gaussianip-tiny@")
    params = load_ply(run_dir / "save" / "stage1.ply")
    assert params["means"].shape[0] > 3000  # densified at step 4
    assert (run_dir / "save" / "stage1_views.png").stat().st_size > 0
    assert "stage 1: 6 steps" in done.stdout
    assert "phase=1" in done.stderr  # the progress bar names the phase


def test_config_mistakes_fail_fast_and_clearly(tmp_path):
    done = _run(tmp_path, "system.stage1.stepz=3")
    assert done.returncode == 2 and "Did you mean 'steps'" in done.stderr
    done = _run(tmp_path, "system.prompt_processor.prompt=   ")
    assert done.returncode == 2 and "prompt is empty" in done.stderr
    done = _run(tmp_path, "system.face_image=missing.png")
    assert done.returncode == 2 and "missing.png" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_paper_config_parses_with_the_method_numbers():
    from gaussianip.config import parse_config
    from gaussianip.data import HumanCameraConfig
    from gaussianip.engine.run import SystemConfig, load_run_config
    from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
    from gaussianip.prior.human_prior import PriorConfig

    cfg = load_run_config("custom/gaussianip/configs/gaussianip.yaml", [])
    system = parse_config(SystemConfig, cfg.system, "system")
    data = parse_config(HumanCameraConfig, cfg.data, "data")
    prior = parse_config(PriorConfig, system.prior, "system.prior")
    guidance = parse_config(HDSGuidanceConfig, system.guidance, "system.guidance")
    assert (data.batch_size, data.height, data.close_up_start_step) == (4, 512, 1200)
    assert prior.ip_adapter_file == "ip-adapter-faceid-plusv2_sd15.bin" and prior.id_scale == 0.5
    assert (guidance.guidance_scale, guidance.repel_threshold) == (7.5, 170)
    assert system.stage1["steps"] == cfg.trainer.max_steps == 2400
    assert system.face_analyser == "buffalo_l"  # the stand-in is for the tiny preset only
