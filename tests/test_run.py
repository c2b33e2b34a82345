"""``gaussianip run`` with the tiny config: the whole method end to end on the CPU."""

import json
import subprocess
import sys

import cv2
import pytest

from gaussianip.gaussians import load_ply

CONFIG = "custom/gaussianip/configs/gaussianip-tiny.yaml"
SHORT = [
    "system.stage1.steps=6",
    "system.guidance.timestep_schedule_cfg.total_steps=6",
    "system.geometry.densify.refine_every=4",
    "system.geometry.densify.refine_start_iter=1",
    "system.reconstruction.steps=3",
    "system.outputs.turntable_frames=6",
]


def _run(tmp_path, *extra):
    cmd = [sys.executable, "-m", "gaussianip", "run", "--config", CONFIG, "--out", str(tmp_path)]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One whole tiny run (stage 1, VCR, reconstruction), shared by the tests below."""
    root = tmp_path_factory.mktemp("runs")
    done = _run(root, *SHORT)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = list(root.iterdir())
    return run_dir, done


def test_tiny_method_writes_every_output(tiny_run):
    run_dir, done = tiny_run
    save = run_dir / "save"
    assert run_dir.name.startswith("gaussianip-tiny@")
    stage1 = load_ply(save / "stage1.ply")
    assert stage1["means"].shape[0] > 2000  # densified at step 4
    final = load_ply(save / "gaussians.ply")
    assert final["means"].shape == stage1["means"].shape  # no densification in stage 2
    assert not (final["sh0"] == stage1["sh0"]).all()  # the reconstruction changed colours
    assert sorted(p.name for p in (save / "vcr").iterdir()) == [
        f"view_{i:02d}.png" for i in range(16)
    ]
    grid = cv2.imread(str(save / "vcr_views.png"))
    assert grid.shape[:2] == (4 * 64 + 3 * 4, 8 * 64 + 7 * 4)  # 2 x (before, after) rows
    video = cv2.VideoCapture(str(save / "turntable.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    ok, frame = video.read()
    assert ok and frame.shape[:2] == (128, 128)
    import imageio_ffmpeg

    meta = next(imageio_ffmpeg.read_frames(str(save / "turntable.mp4")))
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 30
    summary = cv2.imread(str(save / "summary.png"))
    assert summary.shape[0] == 128 + 2 * 28 + 2 * 8  # one row of 128-px panels, 2 text lines
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["phases"]["stage1"]["steps"] == 6
    assert metrics["phases"]["vcr"]["views"] == 16
    assert metrics["phases"]["reconstruction"]["steps"] == 3
    assert all(p["seconds"] > 0 for p in metrics["phases"].values())
    assert metrics["identity"]["arcface_cosine"] is None  # stand-in analyser: no check
    assert "stand-in" in metrics["identity"]["reason"]
    assert metrics["config"]["vcr"]["lambda_self"] == 0.55
    # the CPU gets the small memory plan; the tiny config's own switches stay as set
    assert metrics["memory_plan"]["mode"] == "small"
    assert metrics["memory_plan"]["reason"] == "not a CUDA device"
    assert metrics["config"]["vcr"]["chunk_size"] == 4
    # progress bars name the phases; one summary line names the outputs
    for phase in ("stage 1", "VCR", "reconstruction", "phase=1"):
        assert phase in done.stderr
    # the reconstruction's bar starts once the refinement's has ended (its clock too)
    assert done.stderr.index("reconstruction:") > done.stderr.rindex("VCR:")
    summary = [line for line in done.stdout.splitlines() if "gaussianip: done" in line]
    assert len(summary) == 1
    for name in ("gaussians.ply", "stage1.ply", "stage1_views.png", "vcr", "vcr_views.png",
                 "turntable.mp4", "metrics.json"):  # fmt: skip
        assert name in summary[0], name
    assert metrics["resumed"] == []


def test_restart_at_stage2_reuses_stage1_and_refined_views(tiny_run, tmp_path):
    first = tiny_run[0] / "save"
    done = _run(tmp_path, *SHORT, f"system.stage2_from={first}")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    save = run_dir / "save"
    metrics = json.loads((save / "metrics.json").read_text())
    assert "stage1" not in metrics["phases"]
    assert metrics["phases"]["vcr"]["reused_views"] == 16
    assert metrics["config"]["stage1"]["steps"] == 0
    assert (save / "gaussians.ply").exists() and (save / "vcr_views.png").exists()
    assert load_ply(save / "gaussians.ply")["means"].shape == (
        load_ply(first / "stage1.ply")["means"].shape
    )


def test_restart_needs_a_finished_stage1(tmp_path):
    done = _run(tmp_path / "out", "system.stage2_from=" + str(tmp_path))
    assert done.returncode == 2 and "no stage1.ply there" in done.stderr


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
    from gaussianip.engine.config import SystemConfig, load_run_config
    from gaussianip.engine.reconstruction import ReconstructionConfig
    from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
    from gaussianip.prior.human_prior import PriorConfig
    from gaussianip.refine import VCRConfig

    cfg = load_run_config("custom/gaussianip/configs/gaussianip.yaml", [])
    system = parse_config(SystemConfig, cfg.system, "system")
    data = parse_config(HumanCameraConfig, cfg.data, "data")
    prior = parse_config(PriorConfig, system.prior, "system.prior")
    guidance = parse_config(HDSGuidanceConfig, system.guidance, "system.guidance")
    assert (data.batch_size, data.height, data.close_up_start_step) == (4, 1024, 1200)
    assert prior.ip_adapter_file == "ip-adapter-faceid-plusv2_sd15.bin" and prior.id_scale == 0.5
    assert (guidance.guidance_scale, guidance.repel_threshold) == (7.5, 170)
    assert system.stage1["steps"] == 2400
    assert cfg.trainer.max_steps == 2400 + 800  # stage 1 + reconstruction
    vcr = parse_config(VCRConfig, system.vcr, "system.vcr")
    assert (vcr.refine_steps, vcr.num_inference_steps, vcr.lambda_self) == (8, 50, 0.55)
    assert len(vcr.layers) == 3 and (vcr.id_scale, vcr.shortcut_scale) == (0.6, 0.5)
    assert (data.ring_size, data.ring_height, data.ring_elevation) == (32, 1024, 17)
    recon = parse_config(ReconstructionConfig, system.reconstruction, "system.reconstruction")
    assert (recon.steps, recon.batch_size, recon.lambda_l1, recon.lambda_lpips) == (
        800,
        8,
        10.0,
        15.0,
    )
    assert system.face_analyser == "buffalo_l"  # the stand-in is for the tiny preset only


def test_refinement_redoes_only_the_missing_views(tiny_run, tmp_path):
    import shutil

    source = tmp_path / "earlier"
    shutil.copytree(tiny_run[0] / "save", source)
    for view in (3, 7, 12):  # as if killed while these were being written
        (source / "vcr" / f"view_{view:02d}.png").unlink()
    done = _run(tmp_path / "out", *SHORT, f"system.stage2_from={source}")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = list((tmp_path / "out").iterdir())
    metrics = json.loads((run_dir / "save" / "metrics.json").read_text())
    assert metrics["phases"]["vcr"]["reused_views"] == 13
    assert len(list((run_dir / "save" / "vcr").iterdir())) == 16  # every view, in one place


def test_a_rejected_face_leaves_no_run_folder(tmp_path):
    """Face detection runs before the run folder is made: a blank portrait (no identity)
    fails with our error and leaves the output root empty."""
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (128, 128), (128, 128, 128)).save(blank)
    out = tmp_path / "runs"
    done = _run(out, f"system.face_image={blank}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "gaussianip: error:" in done.stderr and "Traceback" not in done.stderr
    assert "gives no identity" in done.stderr
    assert list(out.iterdir()) == []  # the root was checked writable, no run folder made


def test_an_unwritable_output_root_fails_before_any_model(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = _run(blocker / "runs")
    assert done.returncode == 2 and "Cannot create the output folder" in done.stderr


def test_tiny_avatar_is_rigged_and_every_shipped_motion_animates_it(tiny_run):
    from gaussianip.animate import AnimateOptions, animate
    from gaussianip.motion import list_shipped_motions
    from gaussianip.rig import load_rig

    run_dir, done = tiny_run
    save = run_dir / "save"
    assert "avatar_rig.npz" in done.stdout
    rig = load_rig(save / "avatar_rig.npz")
    assert rig.num_gaussians == load_ply(save / "gaussians.ply")["means"].shape[0]
    videos = []
    for motion in list_shipped_motions():
        opts = AnimateOptions(run_dir, motion, resolution=32, max_frames=2, fps=5)
        files = animate(opts)
        assert "avatar_rig.npz" not in files  # the run's own rig is reused
        videos += [p for p in files.values() if p.suffix == ".mp4"]
    assert [p.name for p in videos] == ["animation.mp4", "animation-2.mp4", "animation-3.mp4"]
    for video in videos:
        capture = cv2.VideoCapture(str(video))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
        ok, frame = capture.read()
        assert ok and frame.shape[:2] == (32, 32) and frame.max() > 30  # the avatar is in view
