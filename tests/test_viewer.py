"""``gaussianip view``: splat arrays, the motion panel (against a fake animation module),
and the real thing in headless Chromium (its screenshot against our own render)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gaussianip.gaussians import GaussianConfig, GaussianModel, load_ply, save_ply
from gaussianip.gaussians.model import SH_C0, rgb_to_sh0
from gaussianip.viewer.splats import splat_arrays

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from helpers.headless_chromium import HeadlessChromium, chromium_binary  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def body_run(tmp_path_factory) -> Path:
    """A run folder whose save/ holds a coloured body (yellow head to red feet, opaque) as
    gaussians.ply and a grey copy as stage1.ply."""
    from gaussianip.body import build_body_model
    from gaussianip.gaussians.init import gaussians_from_body

    run = tmp_path_factory.mktemp("run")
    config = GaussianConfig(init_num_points=20_000, init_opacity=0.9)
    model = gaussians_from_body(build_body_model(name="default"), config,
                                torch.Generator().manual_seed(0))  # fmt: skip
    params = {k: v.detach().clone() for k, v in model.params.items()}
    save_ply(run / "save" / "stage1.ply", params)
    z = params["means"][:, 2]
    rgb = torch.stack([torch.full_like(z, 0.9), (z - z.min()) / (z.max() - z.min()),
                       torch.full_like(z, 0.2)], dim=1)  # fmt: skip
    params["sh0"] = rgb_to_sh0(rgb)[:, None, :]
    save_ply(run / "save" / "gaussians.ply", params)
    return run


def test_splat_arrays_follow_the_3dgs_conventions():
    angle = 0.7  # a rotation about z
    params = {
        "means": torch.tensor([[0.1, -0.2, 0.3]]),
        "scales": torch.log(torch.tensor([[0.2, 0.05, 0.1]])),
        "quats": torch.tensor([[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]]) * 3,
        "opacities": torch.tensor([0.4]),
        "sh0": torch.tensor([[[1.0, -2.0, 0.5]]]),
        "shN": torch.zeros(1, 0, 3),
    }
    out = splat_arrays(params)
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    expected = rotation @ np.diag([0.2, 0.05, 0.1]) ** 2 @ rotation.T
    np.testing.assert_allclose(out["covariances"][0], expected, atol=1e-6)
    np.testing.assert_allclose(out["centers"][0], [0.1, -0.2, 0.3])
    np.testing.assert_allclose(out["rgbs"][0], np.clip(0.5 + SH_C0 * np.array([1, -2, 0.5]),
                                                       0, 1), atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(out["opacities"][0, 0], 1 / (1 + math.exp(-0.4)), atol=1e-6)


def test_view_rejects_bad_input_before_starting(tmp_path, capsys):
    from gaussianip.cli import main

    assert main(["view", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["view", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def _fake_animation(monkeypatch, tmp_path: Path) -> list[int]:
    """Fake ``gaussianip.rig`` / ``gaussianip.motion`` with the animation contract: the
    motion shifts every Gaussian by ``frame`` cm along x. Returns the frames posed."""
    posed: list[int] = []
    motion_file = tmp_path / "wave.npz"
    motion_file.write_bytes(b"fake")
    rig = types.ModuleType("gaussianip.rig")
    rig.load_rig = lambda path: {"rig": str(path)}
    motion = types.ModuleType("gaussianip.motion")
    motion.load_motion = lambda path: types.SimpleNamespace(num_frames=5, fps=30.0, path=path)
    motion.list_shipped_motions = lambda: [motion_file]

    def animate_params(params, rig, motion, frame):
        posed.append(frame)
        return dict(params, means=params["means"] + torch.tensor([0.01 * frame, 0.0, 0.0]))

    motion.animate_params = animate_params
    monkeypatch.setitem(sys.modules, "gaussianip.rig", rig)
    monkeypatch.setitem(sys.modules, "gaussianip.motion", motion)
    return posed


def _until(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_motion_panel_poses_plays_and_switches_stage(body_run, tmp_path, monkeypatch):
    from gaussianip.viewer.app import AvatarViewer

    posed = _fake_animation(monkeypatch, tmp_path)
    save = tmp_path / "run" / "save"
    save.mkdir(parents=True)
    for name in ("gaussians.ply", "stage1.ply"):
        (save / name).write_bytes((body_run / "save" / name).read_bytes())
    shown: list[np.ndarray] = []

    def record(self, params):
        shown.append(splat_arrays(params)["centers"])

    monkeypatch.setattr(AvatarViewer, "show", record)
    viewer = AvatarViewer(save.parent, port=free_port())
    try:
        assert not viewer.motion.enabled  # no avatar_rig.npz: no panel
    finally:
        viewer.stop()
    (save / "avatar_rig.npz").write_bytes(b"fake")
    viewer = AvatarViewer(save.parent, port=free_port())
    try:
        panel = viewer.motion
        assert panel.enabled and list(panel.choice.options) == ["rest pose", "wave"]
        rest = load_ply(save / "gaussians.ply")["means"].numpy()
        panel.select("wave")
        panel.frame.value = 3
        panel.draw()
        assert posed[-1] == 3 and panel.frame.max == 4
        np.testing.assert_allclose(shown[-1] - rest, np.tile([0.03, 0, 0], (len(rest), 1)),
                                   atol=1e-6)  # fmt: skip
        panel.playing.value = True  # the playback thread advances the slider by itself
        assert _until(lambda: len(set(posed)) >= 4)
        panel.playing.value = False
        viewer.stage.value = "stage 1"
        viewer.stage.value = "stage 1"
        panel.select("rest pose")
        stage1 = load_ply(save / "stage1.ply")["means"].numpy()
        np.testing.assert_allclose(shown[-1], stage1)
    finally:
        viewer.stop()


def _silhouette_iou(shot: np.ndarray, ply: Path, size: int) -> float:
    """IoU of the avatar's pixels in ``shot`` (anything not the white background) with
    our own render's (opacity > 0.5) for the viewer's initial camera."""
    from gaussianip.data.human_cameras import ViewKind, make_batch
    from gaussianip.render.views import render_views
    from gaussianip.viewer.app import FRONT_DISTANCE, FRONT_ELEVATION, FRONT_FOVY

    batch = make_batch(torch.zeros(1, 3), torch.tensor([FRONT_ELEVATION]), torch.tensor([0.0]),
                       torch.tensor([FRONT_DISTANCE]), torch.tensor([FRONT_FOVY]), size, size,
                       torch.tensor([int(ViewKind.BODY)]))  # fmt: skip
    model = GaussianModel(load_ply(ply), GaussianConfig())
    with torch.no_grad():
        ours = render_views(model, batch)["opacity"][0, ..., 0].numpy() > 0.5
    theirs = np.abs(shot.astype(int) - 255).max(axis=-1) > 40
    return float((ours & theirs).sum() / (ours | theirs).sum())


HIDE_OVERLAYS = """
for (const e of document.querySelectorAll('body *')) {
  const s = getComputedStyle(e);
  if ((s.position === 'fixed' || s.position === 'absolute') && !e.querySelector('canvas')
      && e.tagName !== 'CANVAS' && e.getBoundingClientRect().width < innerWidth * 0.9)
    e.style.visibility = 'hidden';
}
"""


@pytest.mark.skipif(chromium_binary() is None,
                    reason="no chromium binary (Debian: apt-get install chromium)")  # fmt: skip
def test_view_shows_the_avatar_in_a_real_browser(body_run, tmp_path):
    port, size = free_port(), 512
    env = dict(os.environ, PYTHONPATH=str(ROOT / "custom"))
    server = subprocess.Popen([sys.executable, "-m", "gaussianip", "view", str(body_run),
                               "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        first = server.stdout.readline() if server.stdout else ""
        lines = [first]
        while "gaussianip view:" not in lines[-1] and server.poll() is None:
            lines.append(server.stdout.readline())  # type: ignore[union-attr]
        assert f"http://localhost:{port}" in lines[-1], lines
        with HeadlessChromium(size, size, timeout=90) as browser:
            browser.open(f"http://127.0.0.1:{port}")
            previous, shot = None, None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # until the splats are in and settled
                time.sleep(1.0)
                browser.evaluate(HIDE_OVERLAYS)
                shot = browser.screenshot()
                covered = (np.abs(shot.astype(int) - 255).max(axis=-1) > 40).mean()
                if covered > 0.03 and previous is not None and np.array_equal(shot, previous):
                    break
                previous = shot
            assert shot is not None
            from PIL import Image

            Image.fromarray(shot).save(tmp_path / "viewer.png")
            if os.environ.get("GAUSSIANIP_KEEP_SCREENSHOT"):  # to look at it
                Image.fromarray(shot).save(os.environ["GAUSSIANIP_KEEP_SCREENSHOT"])
        iou = _silhouette_iou(shot, body_run / "save" / "gaussians.ply", size)
        print(f"silhouette IoU, browser vs our render: {iou:.3f}")
        assert iou >= 0.8, f"silhouette IoU {iou:.3f} (screenshot: {tmp_path / 'viewer.png'})"
        # the avatar is coloured as the model says: yellow-ish head above red feet
        rows = np.nonzero((np.abs(shot.astype(int) - 255).max(axis=-1) > 40).any(axis=1))[0]
        head = shot[rows[0] + 10 : rows[0] + 30].reshape(-1, 3)
        assert head[(head < 250).any(axis=1)][:, 1].mean() > 150  # green channel: yellow
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and "stopped" in out, out[-2000:]


def test_motion_panel_contract_holds_for_the_real_animation_modules(tmp_path):
    """The panel's calls into ``gaussianip.rig`` / ``gaussianip.motion`` (faked above) work
    with the real modules: a rig written to disk loads, every shipped motion is offered,
    and a posed frame moves the Gaussians of an arm while keeping their count."""
    from gaussianip.body import build_body_model
    from gaussianip.viewer.motion_panel import RIG_FILE, animation_modules, posed_params

    modules = animation_modules()
    assert modules is not None
    rig_module, motion_module = modules
    body = build_body_model("default")
    means, _ = body.sample_surface(300, torch.Generator().manual_seed(0))
    rig_module.save_rig(tmp_path / RIG_FILE, rig_module.build_rig(means, body))
    rig = rig_module.load_rig(tmp_path / RIG_FILE)
    shipped = {p.stem for p in motion_module.list_shipped_motions()}
    assert {"walk", "wave", "turn"} <= shipped
    motion = motion_module.load_motion(
        next(p for p in motion_module.list_shipped_motions() if p.stem == "wave")
    )
    assert motion.num_frames > 1 and motion.fps > 0
    n = means.shape[0]
    params = {"means": means, "quats": torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4).clone(),
              "scales": torch.full((n, 3), -4.0), "opacities": torch.zeros(n),
              "sh0": torch.zeros(n, 1, 3), "shN": torch.zeros(n, 0, 3)}  # fmt: skip
    posed = posed_params(motion_module, params, rig, motion, motion.num_frames // 2)
    assert posed["means"].shape == (n, 3)
    assert (posed["means"] - means).norm(dim=-1).max() > 0.05
