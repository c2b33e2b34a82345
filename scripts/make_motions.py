"""Make the motions shipped in ``load/motions/`` from keyframe curves (no download).

Each is a short SMPL-X motion in the AMASS npz layout (``poses`` [T, 165] axis-angle,
``trans`` [T, 3], ``mocap_frame_rate``, ``betas``, ``gender``), in AMASS's z-up world:

- ``walk.npz``: two strides forward (2.2 s), legs and arms swinging in opposition;
- ``wave.npz``: the right arm rises, waves three times and comes down (2.5 s);
- ``turn.npz``: a full turn on the spot with small steps (3 s).

Deterministic: ``python scripts/make_motions.py`` rewrites identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

OUT = Path(__file__).resolve().parents[1] / "load" / "motions"
FPS = 30
JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
# SMPL's body frame: x = the person's left, y = up, z = forward. AMASS's world is z-up:
# its root orientation carries this turn from y-up to z-up.
Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True)


def rot(axis: str, degrees: float) -> Rotation:
    return Rotation.from_euler(axis, degrees, degrees=True)


def arms_down(pose: dict[str, Rotation], degrees: float = 75.0) -> None:
    """Lower both arms from the T-pose (a rotation about the forward axis, z)."""
    pose["left_shoulder"] = rot("z", -degrees)
    pose["right_shoulder"] = rot("z", degrees)


def pack(frames: list[dict[str, Rotation]], headings: list[float], trans: np.ndarray) -> dict:
    poses = np.zeros((len(frames), 55, 3), np.float32)
    for t, (pose, heading) in enumerate(zip(frames, headings, strict=True)):
        for name, value in pose.items():
            poses[t, JOINTS.index(name)] = value.as_rotvec()
        poses[t, 0] = (rot("z", heading) * Y_UP_TO_Z_UP).as_rotvec()
    return {
        "poses": poses.reshape(len(frames), 165),
        "trans": trans.astype(np.float32),
        "mocap_frame_rate": np.array(float(FPS)),
        "betas": np.zeros(16, np.float32),
        "gender": np.array("neutral"),
    }


def walk() -> dict:
    frames, period, speed = int(2.2 * FPS), 1.1, 0.6  # seconds per stride, metres per second
    poses, trans = [], np.zeros((frames, 3))
    for t in range(frames):
        phase = 2 * math.pi * t / FPS / period
        swing = math.sin(phase)
        pose: dict[str, Rotation] = {}
        arms_down(pose)
        # A leg swings forward under a negative rotation about x (the person's left).
        pose["left_hip"] = rot("x", -28 * swing)
        pose["right_hip"] = rot("x", 28 * swing)
        pose["left_knee"] = rot("x", 5 + 40 * max(0.0, math.sin(phase + 0.6)))
        pose["right_knee"] = rot("x", 5 + 40 * max(0.0, -math.sin(phase + 0.6)))
        pose["left_shoulder"] = rot("x", 22 * swing) * pose["left_shoulder"]
        pose["right_shoulder"] = rot("x", -22 * swing) * pose["right_shoulder"]
        pose["left_elbow"] = rot("y", -15)  # flexed: the forearm forward
        pose["right_elbow"] = rot("y", 15)
        poses.append(pose)
        # AMASS world: the person faces -y at heading 0 (SMPL's +z turned z-up).
        trans[t] = (0.0, -speed * t / FPS, 0.015 * math.cos(2 * phase))
    return pack(poses, [0.0] * frames, trans)


def wave() -> dict:
    frames = int(2.5 * FPS)
    poses = []
    for t in range(frames):
        seconds = t / FPS
        # Raise over 0.5 s, wave until 2.0 s, lower over the last 0.5 s.
        up = min(1.0, seconds / 0.5, max(0.0, (2.5 - seconds) / 0.5))
        pose: dict[str, Rotation] = {}
        arms_down(pose)
        # Right arm from down (+75 deg about z) to raised sideways (-50 deg), forearm up.
        pose["right_shoulder"] = rot("z", 75 - 125 * up)
        wag = 25 * math.sin(2 * math.pi * 1.5 * max(0.0, seconds - 0.5)) * up
        pose["right_elbow"] = rot("z", -70 * up + wag)
        pose["spine3"] = rot("z", 4 * up)
        pose["head"] = rot("y", -8 * up)
        poses.append(pose)
    return pack(poses, [0.0] * frames, np.zeros((frames, 3)))


def turn() -> dict:
    frames = int(3.0 * FPS)
    poses, headings = [], []
    for t in range(frames):
        seconds = t / FPS
        s = seconds / 3.0
        heading = 360 * (3 * s**2 - 2 * s**3)  # ease in and out
        step = math.sin(2 * math.pi * seconds / 0.75)
        pose: dict[str, Rotation] = {}
        arms_down(pose, 70)
        pose["left_hip"] = rot("x", -20 * max(0.0, step))
        pose["left_knee"] = rot("x", 35 * max(0.0, step))
        pose["right_hip"] = rot("x", -20 * max(0.0, -step))
        pose["right_knee"] = rot("x", 35 * max(0.0, -step))
        poses.append(pose)
        headings.append(heading)
    return pack(poses, headings, np.zeros((frames, 3)))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in (("walk", walk), ("wave", wave), ("turn", turn)):
        path = OUT / f"{name}.npz"
        np.savez_compressed(path, **make())
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
