"""One config and seed give the same avatar on the CPU: two tiny runs, byte for byte."""

import subprocess
import sys

CONFIG = "custom/gaussianip/configs/gaussianip-tiny.yaml"
SHORT = [
    "system.stage1.steps=8",
    "system.guidance.timestep_schedule_cfg.total_steps=8",
    "system.geometry.densify.refine_every=4",  # densifies at step 4 (split: random draws)
    "system.geometry.densify.refine_start_iter=1",
    "system.reconstruction.steps=3",  # L1 + LPIPS + face and hand patches
    "data.ring_height=32",
    "data.ring_width=32",
    "data.n_test_views=2",
    "data.n_val_views=2",
]


def test_two_runs_of_one_config_write_identical_files(tmp_path):
    runs = [
        subprocess.Popen([sys.executable, "-m", "gaussianip", "run", "--config", CONFIG,
                          "--out", str(tmp_path / name), *SHORT],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
    (a,) = (tmp_path / "a").iterdir()
    (b,) = (tmp_path / "b").iterdir()
    names = ["stage1.ply", "gaussians.ply"] + [f"vcr/view_{i:02d}.png" for i in range(16)]
    for name in names:
        assert (a / "save" / name).read_bytes() == (b / "save" / name).read_bytes(), name
