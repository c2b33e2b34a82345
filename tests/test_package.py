"""Package-level behaviour: import without threestudio, CLI errors, code style."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_without_threestudio_in_a_clean_interpreter():
    code = (
        "import sys; sys.modules['threestudio'] = None\n"  # makes `import threestudio` fail
        "import gaussianip; print(gaussianip.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.1.0"


def test_cli_reports_user_errors_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "gaussianip", "preview", "--out", str(tmp_path / "o")]
    out = subprocess.run(cmd + ["--num-points", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--num-points must be >= 1, got 0" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run(cmd + ["--body", "robot"], capture_output=True, text=True)
    assert out.returncode == 2 and "robot" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(cmd + ["--body", "robot", "--verbose"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" in out.stderr


# ruff is a test dependency (pyproject's [test] extra, pinned so that its formatting is
# stable): these are the README's "ruff check" and "ruff format" claims.
def test_ruff_check_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "custom", "tests", "scripts"],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_clean():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "custom", "tests", "scripts"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, "run `ruff format custom tests scripts`:\n" + out.stdout


def test_preview_writes_the_three_files_and_never_overwrites(tmp_path):
    import numpy as np
    from PIL import Image

    from gaussianip.gaussians import load_ply

    out = tmp_path / "preview"
    cmd = [sys.executable, "-m", "gaussianip", "preview", "--out", str(out),
           "--num-points", "3000", "--resolution", "96"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    params = load_ply(out / "init.ply")
    assert params["means"].shape == (3000, 3)
    views = np.asarray(Image.open(out / "views.png"))
    pose = np.asarray(Image.open(out / "openpose.png"))
    assert views.shape == pose.shape == (96, 4 * 96 + 3 * 4, 3)
    front = views[:, :96]
    centre = front[30:70, 40:56]
    assert centre.mean() > 40 and front[:, :10].max() == 0  # a grey body on black
    grey = centre[centre.sum(-1) > 60]
    assert np.abs(grey[:, 0].astype(int) - grey[:, 2]).max() <= 1  # grey, not coloured
    assert pose[:, :96].max() > 0  # a skeleton is drawn
    before = (out / "init.ply").read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "nothing was overwritten" in again.stderr
    assert (out / "init.ply").read_bytes() == before
