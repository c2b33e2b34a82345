"""Faults during a run: NaN/Inf steps, GPU out of memory, a killed run resumed."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from gaussianip import cli
from gaussianip.engine.faults import NonFiniteGuard, TrainingDiverged
from gaussianip.gaussians import load_ply

CONFIG = "custom/gaussianip/configs/gaussianip-tiny.yaml"
QUICK = [
    "system.stage1.steps=12",
    "system.guidance.timestep_schedule_cfg.total_steps=12",
    "system.geometry.densify.refine_every=4",
    "system.geometry.densify.refine_start_iter=1",
    "system.reconstruction.steps=2",
    "data.ring_height=32",
    "data.ring_width=32",
    "data.n_test_views=2",
    "data.n_val_views=2",
    "checkpoint.every_n_train_steps=3",
]


def test_guard_skips_nonfinite_steps_and_stops_a_diverged_run():
    guard = NonFiniteGuard("stage 1", max_consecutive=3)
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    assert guard.ok(0, torch.tensor(1.0), [p]) and guard.skipped == 0
    p.grad = torch.tensor([1.0, float("nan"), 1.0])
    assert not guard.ok(1, torch.tensor(1.0), [p])
    assert not guard.ok(2, torch.tensor(float("inf")), [p])
    assert guard.skipped == 2
    p.grad = torch.ones(3)
    assert guard.ok(3, torch.tensor(1.0), [p]) and guard.consecutive == 0
    p.grad[0] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN/Inf for 3 steps in a row"):
        for step in range(4, 8):
            guard.ok(step, torch.tensor(1.0), [p])


def test_stage1_skips_a_nan_step_without_touching_the_gaussians():
    from gaussianip.body import build_body_model
    from gaussianip.data import HumanCameraConfig, HumanCameraSampler
    from gaussianip.engine import Stage1Config, Stage1Trainer
    from gaussianip.gaussians import GaussianConfig
    from gaussianip.gaussians.init import gaussians_from_body

    model = gaussians_from_body(build_body_model(), GaussianConfig(init_num_points=500),
                                torch.Generator().manual_seed(0))  # fmt: skip
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=1, height=16, width=16))

    def nan_guidance(rgb, batch, step):
        return {"loss_sds": rgb.sum() * float("nan")}

    trainer = Stage1Trainer(model, sampler, nan_guidance, Stage1Config(steps=2))
    before = {k: v.detach().clone() for k, v in model.params.items()}
    logs = trainer.step(0)
    assert logs["skipped"] == 1.0 and trainer.guard.skipped == 1
    for name, value in model.params.items():
        assert torch.equal(value, before[name]), name


def test_out_of_memory_names_the_settings_that_reduce_memory(monkeypatch, capsys, tmp_path):
    from gaussianip.engine import pipeline

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipeline.GaussianIPPipeline, "train_step", oom)
    code = cli.main(["run", "--config", CONFIG, "--out", str(tmp_path), *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and "ran out of memory" in err
    assert "data.batch_size" in err and "system.reconstruction.lpips_resolution" in err
    assert "Traceback" not in err


def _cli(*args, **kwargs):
    cmd = [sys.executable, "-m", "gaussianip", "run", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)  # fmt: skip


def test_a_run_killed_in_stage1_resumes_to_completion(tmp_path):
    # Not compared value for value with an uninterrupted run (whether a resumed run is
    # bit-identical to one never stopped is not checked here).
    killed = _cli("--config", CONFIG, "--out", str(tmp_path / "killed"), *QUICK)
    deadline = time.time() + 300
    checkpoint = None
    while time.time() < deadline and checkpoint is None:
        found = list((tmp_path / "killed").glob("*/ckpts/last.pt"))
        checkpoint = found[0] if found else None
        time.sleep(0.2)
    assert checkpoint is not None, "no checkpoint was written"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    run_dir = checkpoint.parent.parent
    saved_step = torch.load(checkpoint, weights_only=True)["step"]
    assert saved_step < 11 and not (run_dir / "save" / "gaussians.ply").exists()

    resumed = _cli("--resume", str(run_dir))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming {run_dir} at step {saved_step + 1}" in out
    metrics = json.loads((run_dir / "save" / "metrics.json").read_text())
    assert metrics["phases"]["stage1"]["steps"] == 12
    assert metrics["phases"]["reconstruction"]["steps"] == 2
    stage1, final = (load_ply(run_dir / "save" / n) for n in ("stage1.ply", "gaussians.ply"))
    assert stage1["means"].shape == final["means"].shape
    assert stage1["means"].shape[0] > 2000  # densified, as an uninterrupted run is
    assert len(list((run_dir / "save" / "vcr").glob("view_*.png"))) == 16

    again = _cli("--resume", str(run_dir))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "that run is finished" in err


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    code = cli.main(["run", "--resume", str(tmp_path)])
    assert code == 2
    env_free = cli.main(["run", "--resume", str(tmp_path), "--config", CONFIG])
    assert env_free == 2


def test_a_run_stopped_in_reconstruction_continues_it(tmp_path, monkeypatch):
    """Resume inside the reconstruction: the refined views come from disk (nothing is
    denoised again), and the Adam moments and the batch order carry over."""
    from gaussianip.engine.config import load_run_config, parse_run_config
    from gaussianip.engine.pipeline import GaussianIPPipeline

    overrides = [o for o in QUICK if "steps" not in o and "refine_" not in o]
    overrides += ["system.stage1.steps=2", "system.guidance.timestep_schedule_cfg.total_steps=2",
                  "system.reconstruction.steps=4"]  # fmt: skip
    settings = parse_run_config(load_run_config(CONFIG, overrides))
    save = tmp_path / "save"
    first = GaussianIPPipeline(settings, "cpu", save)
    stop = first.stage1_steps + 1  # two reconstruction steps done
    for step in range(stop + 1):
        first.train_step(step)
    torch.save(first.state_dict(stop), tmp_path / "last.pt")
    # where the refinement's seconds went, part by part, within the phase's own time
    vcr = first.metrics["phases"]["vcr"]
    assert set(vcr["parts"]) == {"ring_render", "encode", "denoise", "decode", "png_wait",
                                 "outputs"}  # fmt: skip
    assert 0 < sum(vcr["parts"].values()) <= vcr["seconds"] + 0.01

    from gaussianip.refine import ViewConsistentRefiner

    def denoise(*args, **kwargs):
        raise AssertionError("a refined view was denoised again")

    monkeypatch.setattr(ViewConsistentRefiner, "refine", denoise)
    second = GaussianIPPipeline(settings, "cpu", save)
    start = second.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True)) + 1
    assert start == first.stage1_steps + 2
    torch.testing.assert_close(second.refined, first.refined, rtol=0, atol=0)  # from disk
    # the refinement's record is the one of the run before the stop (its real seconds)
    assert second.metrics["phases"]["vcr"] == first.metrics["phases"]["vcr"]
    assert second.metrics["resumed"][0]["phase"] == "reconstruction"
    assert second.reconstructor._order == first.reconstructor._order
    for name, optimizer in first.reconstructor.optimizers.items():
        ours = second.reconstructor.optimizers[name].state_dict()["state"][0]["exp_avg"]
        torch.testing.assert_close(ours, optimizer.state_dict()["state"][0]["exp_avg"])
    for step in range(start, second.total_steps):
        second.train_step(step)
    files = second.finish()
    assert files["gaussians.ply"].is_file()
    assert json.loads(files["metrics.json"].read_text())["phases"]["reconstruction"]["steps"] == 4


def _wait_for(predicate, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_ctrl_c_saves_a_checkpoint_and_one_resume_at_a_time(tmp_path):
    """A real run gets SIGINT (Ctrl-C): one line with the exact --resume command, exit 130,
    a checkpoint at the step it stopped after. While that resume runs, a second --resume of
    the folder is refused naming the first one's pid; the first then finishes, and its
    metrics keep the seconds from before the stop and say that it resumed."""
    slow = [o for o in QUICK if not o.startswith("checkpoint.")] + [
        "checkpoint.every_n_train_steps=1000"  # only the checkpoint that Ctrl-C writes
    ]
    first = _cli("--config", CONFIG, "--out", str(tmp_path), *slow)
    run_dir = _wait_for(lambda: next(tmp_path.glob("*/config.yaml"), None), "the run folder")
    run_dir = run_dir.parent
    time.sleep(2)  # into stage 1
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gaussianip:")]
    assert len(lines) == 1, err[-3000:]
    saved = torch.load(run_dir / "ckpts" / "last.pt", weights_only=True)
    step = saved["step"]
    assert saved["phase_seconds"] > 0
    command = f"-m gaussianip run --resume {run_dir}"
    assert f"stopped after step {step + 1} of 14 (checkpoint saved)" in lines[0]
    assert lines[0].endswith(f"{command}` continues after step {step + 1} of 14.")
    assert not (run_dir / "run.lock").exists()  # released on the way out

    resumed = _cli("--resume", str(run_dir))
    _wait_for(lambda: (run_dir / "run.lock").is_file() and str(resumed.pid) in
              (run_dir / "run.lock").read_text(), "the resumed run's lock")  # fmt: skip
    second = _cli("--resume", str(run_dir))
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 2 and f"in use by process {resumed.pid}" in err2, err2[-2000:]
    assert "Traceback" not in err2
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming {run_dir} at step {step + 1}" in out
    metrics = json.loads((run_dir / "save" / "metrics.json").read_text())
    assert [r["at_step"] for r in metrics["resumed"]] == [step + 1]
    assert metrics["resumed"][0]["phase"] == ("stage1" if step + 1 < 12 else "reconstruction")
    if step + 1 < 12:  # the seconds before Ctrl-C are counted in stage 1's time
        assert metrics["phases"]["stage1"]["seconds"] >= saved["phase_seconds"]
