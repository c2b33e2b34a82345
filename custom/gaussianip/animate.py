"""``gaussianip animate``: drive a finished avatar with a motion and film it.

Reads ``gaussians.ply`` from a run's save folder, binds it to the run's body once
(``avatar_rig.npz``, reused afterwards), poses it for every video frame of the motion
(``gaussianip.motion.animate_params``) and renders ``animation.mp4`` (gsplat on CUDA, our
exact rasterizer on the CPU). Nothing existing is overwritten: a second animation of the
same run becomes ``animation-2.mp4`` and so on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from omegaconf import OmegaConf
from torch import Tensor

from gaussianip.cameras import c2w_to_viewmat, intrinsics, look_at
from gaussianip.errors import AssetError, ConfigError
from gaussianip.motion import Motion, animate_params, load_motion, motion_joint_transforms
from gaussianip.rig import (
    RIG_FILE,
    AvatarRig,
    Binding,
    build_rig,
    load_rig,
    pose_gaussians,
    save_rig,
)

CAMERAS = ("front", "orbit", "follow")
FOVY_DEG = 40.0
ELEVATION_DEG = 8.0
_FRAMING_SAMPLE = 4096  # Gaussians whose posed positions decide the framing


@dataclass
class AnimateOptions:
    run_dir: Path
    motion: Path
    camera: Literal["front", "orbit", "follow"] = "front"
    resolution: int = 512
    fps: float | None = None  # None: 30, or the motion's own rate where that is lower
    ply_every: int = 0  # also write every N-th posed frame as a 3DGS PLY (0: none)
    max_frames: int | None = None  # only the first video frames (quick looks, tests)
    device: str = "cpu"
    out: Path | None = None  # the mp4 (default: <save>/animation.mp4, or -2, -3, ...)


@dataclass
class AnimationConfig:
    """``system.animation``: a motion to animate the finished avatar with, at the end of
    ``gaussianip run`` and in threestudio's test stage (``launch.py --test``)."""

    motion: str | None = None  # AMASS-layout .npz; None: no animation
    camera: str = "front"  # front, orbit or follow
    resolution: int = 512
    fps: float | None = None  # None: 30, or the motion's own rate where that is lower
    ply_every: int = 0
    max_frames: int | None = None


def parse_animation(cfg: dict | None) -> AnimationConfig:
    """Parse and check ``system.animation`` (the motion file is read: errors in seconds)."""
    from gaussianip.config import parse_config

    parsed = parse_config(AnimationConfig, cfg or {}, "system.animation")
    if parsed.camera not in CAMERAS:
        raise ConfigError(f"system.animation.camera must be one of {', '.join(CAMERAS)}, "
                          f"got '{parsed.camera}'.")  # fmt: skip
    if parsed.motion:
        motion = load_motion(parsed.motion)
        fps = video_fps(motion, parsed.fps, "system.animation.fps")
        check_video_length(motion, video_frames(motion, fps, parsed.max_frames), fps,
                           parsed.max_frames)  # fmt: skip
    return parsed


def animate_run(
    save: Path, cfg: AnimationConfig, device: str = "cpu", out: Path | None = None
) -> dict[str, Path]:
    """Animate the avatar in the save folder ``save`` with ``cfg`` (nothing when
    ``cfg.motion`` is None) into ``out`` (default: the next free animation name)."""
    if not cfg.motion:
        return {}
    opts = AnimateOptions(run_dir=Path(save), motion=Path(cfg.motion), camera=cfg.camera,  # type: ignore[arg-type]
                          resolution=cfg.resolution, fps=cfg.fps, ply_every=cfg.ply_every,
                          max_frames=cfg.max_frames, device=str(device), out=out)  # fmt: skip
    return animate(opts)


def find_save_dir(run_dir: Path) -> Path:
    """The folder holding ``gaussians.ply``: ``run_dir/save`` or ``run_dir`` itself."""
    for folder in (run_dir / "save", run_dir):
        if (folder / "gaussians.ply").is_file():
            return folder
    raise AssetError(
        f"No gaussians.ply in '{run_dir}' or '{run_dir / 'save'}'. Give the folder of a "
        "finished run (outputs/<name>@<time>, or its save/ folder)."
    )


def _body_settings(save: Path) -> dict:
    """The run's ``system.body`` (our CLI's config.yaml, or threestudio's parsed.yaml)."""
    from gaussianip.safe_load import load_yaml

    for config in (save.parent / "config.yaml", save.parent / "configs" / "parsed.yaml"):
        if config.exists():
            cfg = load_yaml(config, "run's config")
            body = OmegaConf.select(cfg, "system.body") or OmegaConf.select(
                cfg, "system.geometry.body"
            )
            if body is not None:
                return dict(OmegaConf.to_container(body, resolve=True))  # type: ignore[arg-type]
    return {"name": "default"}


def rig_for_run(save: Path, params: dict[str, Tensor]) -> tuple[AvatarRig, Path | None]:
    """The run's rig: ``avatar_rig.npz`` if present, else built and written (the returned
    path is None when an existing file was reused)."""
    file = save / RIG_FILE
    n = params["means"].shape[0]
    if file.exists():
        rig = load_rig(file)
        if rig.num_gaussians != n:
            raise AssetError(
                f"'{file}' binds {rig.num_gaussians} Gaussians but '{save / 'gaussians.ply'}'"
                f" has {n}. Move the old rig file away; animate then binds the avatar again."
            )
        return rig, None
    from gaussianip.body import build_body_model

    body = build_body_model(**_body_settings(save))
    rig = build_rig(params["means"], body)
    try:
        return rig, save_rig(file, rig)
    except AssetError:
        if file.is_file():  # another command bound the same avatar at the same moment
            return rig, None
        raise


def video_frames(motion: Motion, fps: float, max_frames: int | None = None) -> list[int]:
    """Motion frame indices for a video at ``fps`` (nearest frame), capped at
    ``max_frames``."""
    fps = min(fps, motion.fps)
    count = max(1, math.floor(motion.duration * fps + 1e-6))
    frames = [min(motion.num_frames - 1, round(i * motion.fps / fps)) for i in range(count)]
    return frames[:max_frames] if max_frames else frames


DEFAULT_FPS = 30.0
# Longer videos are refused unless --max-frames asks for them: 10 minutes at 30 fps.
MAX_VIDEO_FRAMES = 18_000
GPU_FRAMES_PER_SECOND = 277  # posing + rendering 100k Gaussians at 1024 px, one H200


def video_fps(motion: Motion, fps: float | None, option: str = "--fps") -> float:
    """The video's frame rate: ``fps``, or by default 30 (the motion's own rate where it
    is lower). A rate above the motion's is refused: its frames would only repeat."""
    if fps is None:
        return min(DEFAULT_FPS, motion.fps)
    if fps > motion.fps + 1e-6:
        raise ConfigError(
            f"{option} {fps:g} is above the frame rate of the motion '{motion.path}' "
            f"({motion.fps:g} fps, {motion.num_frames} frames, {motion.duration:.2f} s): each "
            f"motion frame would only repeat. Give {option} {motion.fps:g} (or less; the "
            "video keeps the motion's duration), or resample the motion to a higher rate."
        )
    return fps


def check_video_length(motion: Motion, frames: list[int], fps: float,
                       max_frames: int | None) -> None:  # fmt: skip
    """Refuse, before any work, a video longer than ``MAX_VIDEO_FRAMES`` that
    ``--max-frames`` did not ask for, with what it would cost."""
    if max_frames is not None or len(frames) <= MAX_VIDEO_FRAMES:
        return
    minutes = len(frames) / fps / 60
    gpu_minutes = len(frames) / GPU_FRAMES_PER_SECOND / 60
    raise ConfigError(
        f"The motion '{motion.path}' gives {len(frames):,} video frames ({minutes:.0f} min "
        f"of video at {fps:g} fps): about {gpu_minutes:.0f} min of posing and rendering "
        "on an H200 and many hours on a CPU, and a video of gigabytes. At most "
        f"{MAX_VIDEO_FRAMES:,} frames are made unless you ask: --max-frames N renders the "
        f"first N (--max-frames {len(frames)} for all of them), --fps lowers the rate."
    )


def frame_cameras(
    params: dict[str, Tensor], rig: AvatarRig, motion: Motion, frames: list[int], camera: str
) -> tuple[Tensor, Tensor]:
    """OpenGL camera-to-world [F, 4, 4] per video frame, framing the posed avatar; and
    the vertical field of view (radians) [F]."""
    if camera not in CAMERAS:
        raise ConfigError(f"--camera must be one of {', '.join(CAMERAS)}, got '{camera}'.")
    n = params["means"].shape[0]
    visible = torch.sigmoid(params["opacities"].detach().cpu()) > 0.05
    pick = visible.nonzero()[:, 0] if visible.any() else torch.arange(n)
    pick = pick[torch.linspace(0, len(pick) - 1, min(len(pick), _FRAMING_SAMPLE)).long()]
    binding = Binding(rig.binding.joint_indices[pick], rig.binding.joint_weights[pick])
    transforms = motion_joint_transforms(rig.skeleton, motion)[frames]
    sample = {
        "means": params["means"].detach().cpu()[pick],
        "quats": params["quats"].detach().cpu()[pick],
    }
    bounds = []
    for start in range(0, len(frames), 256):  # chunks: long motions stay small in memory
        posed = pose_gaussians(sample, binding, transforms[start : start + 256])["means"]
        bounds.append((posed.amin(1), posed.amax(1)))  # [f, 3] each, per frame
    lo, hi = torch.cat([b[0] for b in bounds]), torch.cat([b[1] for b in bounds])
    half_fov = math.radians(FOVY_DEG) / 2
    elev = math.radians(ELEVATION_DEG)
    if camera == "follow":
        centre = (lo + hi) / 2
        # Smooth the tracked centre over a third of a second, so the camera glides.
        kernel = torch.ones(1, 1, 9) / 9
        padded = torch.nn.functional.pad(centre.T[:, None], (4, 4), mode="replicate")
        centre = torch.nn.functional.conv1d(padded, kernel)[:, 0].T
        half = ((hi - lo) / 2).amax(0)  # the largest extent over the frames, per axis
    else:
        lo_all, hi_all = lo.amin(0), hi.amax(0)
        centre = ((lo_all + hi_all) / 2).expand(len(frames), 3)
        half = (hi_all - lo_all) / 2
    if camera == "orbit":  # every side faces the camera once: fit the bounding sphere
        distance = float(half.norm()) / math.sin(half_fov)
    else:  # looking along -x: the box's near face must fit the view
        distance = float(half[1:].max()) / math.tan(half_fov) + float(half[0])
    distance *= 1.08
    if camera == "orbit":
        azimuth = torch.linspace(0, 2 * math.pi, len(frames) + 1)[:-1]
    else:
        azimuth = torch.zeros(len(frames))
    direction = torch.stack([math.cos(elev) * torch.cos(azimuth),
                             math.cos(elev) * torch.sin(azimuth),
                             torch.full_like(azimuth, math.sin(elev))], dim=1)  # fmt: skip
    c2w = look_at(centre + distance * direction, centre)
    return c2w, torch.full((len(frames),), 2 * half_fov)


def render_params(params: dict[str, Tensor], c2w: Tensor, fovy: Tensor, size: int) -> Tensor:
    """[H, W, 3] render of Gaussian ``params`` (pre-activation) for one camera."""
    from gaussianip.render import rasterize

    device = params["means"].device
    colors = torch.cat([params["sh0"], params["shN"]], dim=1)
    sh_degree = round(math.sqrt(colors.shape[1])) - 1
    image, _, _ = rasterize(
        means=params["means"],
        quats=params["quats"],
        scales=torch.exp(params["scales"]),
        opacities=torch.sigmoid(params["opacities"]),
        colors=colors,
        viewmats=c2w_to_viewmat(c2w[None].to(device)),
        Ks=intrinsics(fovy[None].to(device), size, size),
        width=size,
        height=size,
        sh_degree=sh_degree,
        backgrounds=torch.zeros(1, 3, device=device),
    )
    return image[0, ..., :3]


def animate(opts: AnimateOptions) -> dict[str, Path]:
    """Animate a run's avatar (see the module docstring); returns {name: path}."""

    if opts.resolution < 16:
        raise ConfigError(f"--resolution must be >= 16 pixels, got {opts.resolution}.")
    if opts.fps is not None and not opts.fps > 0:
        raise ConfigError(f"--fps must be > 0, got {opts.fps}.")
    if opts.ply_every < 0:
        raise ConfigError(f"--ply-every must be >= 0 (0: no PLYs), got {opts.ply_every}.")
    if opts.camera not in CAMERAS:
        raise ConfigError(f"--camera must be one of {', '.join(CAMERAS)}, got '{opts.camera}'.")
    save = find_save_dir(Path(opts.run_dir))
    motion = load_motion(opts.motion)  # bad motion files fail here, in seconds
    fps = video_fps(motion, opts.fps)
    frames = video_frames(motion, fps, opts.max_frames)
    check_video_length(motion, frames, fps, opts.max_frames)
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but no CUDA GPU is visible; use --device cpu.")
    video, ply_dir = _claim_outputs(save, opts)
    try:
        return _animate(opts, save, motion, frames, fps, video, ply_dir)
    except BaseException:  # nothing half-made stays under a name we claimed
        if video.is_file() and video.stat().st_size == 0:
            video.unlink()
        if ply_dir is not None and ply_dir.is_dir() and not any(ply_dir.iterdir()):
            ply_dir.rmdir()
        raise


def _claim_outputs(save: Path, opts: AnimateOptions) -> tuple[Path, Path | None]:
    """The video's name (and its PLY folder's), claimed atomically: two animations at once
    never get the same name. ``--out`` is never replaced."""
    from gaussianip.output_files import reserve_free_name
    from gaussianip.paths import check_output_file

    sibling = "_ply" if opts.ply_every else None
    if opts.out is None:
        video = reserve_free_name(save, "animation", ".mp4", sibling)
        return video, video.with_name(video.stem + "_ply") if sibling else None
    video = check_output_file(Path(opts.out), "--out")
    ply_dir = video.with_name(video.stem + "_ply") if sibling else None
    try:
        os.close(os.open(video, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise AssetError(f"'{video}' exists; it is left as it is (give another --out).") from None
    if ply_dir is not None:
        try:
            ply_dir.mkdir()
        except FileExistsError:
            video.unlink()
            raise AssetError(f"'{ply_dir}' exists; it is left as it is (give another --out)."
                             ) from None  # fmt: skip
    return video, ply_dir


def _animate(opts: AnimateOptions, save: Path, motion: Motion, frames: list[int], fps: float,
             video: Path, ply_dir: Path | None) -> dict[str, Path]:  # fmt: skip
    from tqdm import tqdm

    from gaussianip.gaussians import load_ply, save_ply
    from gaussianip.images import save_mp4

    device = torch.device(opts.device)
    params = load_ply(save / "gaussians.ply")
    rig, rig_written = rig_for_run(save, params)
    files: dict[str, Path] = {}
    if rig_written is not None:
        files[RIG_FILE] = rig_written
    c2w, fovy = frame_cameras(params, rig, motion, frames, opts.camera)
    on_device = {k: v.to(device) for k, v in params.items()}
    rig_on_device = rig.to(device)

    def rendered():  # one frame at a time: a long motion never sits in memory
        with torch.no_grad():
            for i, frame in enumerate(tqdm(frames, desc=f"animate {motion.name}", unit="frame")):
                posed = animate_params(on_device, rig_on_device, motion, frame)
                if ply_dir is not None and i % opts.ply_every == 0:
                    save_ply(ply_dir / f"frame_{frame:05d}.ply", posed)
                yield render_params(posed, c2w[i], fovy[i], opts.resolution).cpu()

    files[video.name] = save_mp4(video, rendered(), fps=fps)  # the video keeps its duration
    if ply_dir is not None:
        files[ply_dir.name] = ply_dir
    return files


def summary(opts: AnimateOptions, files: dict[str, Path]) -> str:
    where = ", ".join(str(p) for p in files.values())
    return f"gaussianip: animated '{Path(opts.motion).name}' ({opts.camera} camera); wrote {where}"
