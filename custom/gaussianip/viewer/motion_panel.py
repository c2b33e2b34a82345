"""The viewer's motion panel: pick a shipped motion (or the one given with ``--motion``),
play / pause it, scrub a frame slider. Shown only where the run has a rig
(``save/avatar_rig.npz``) and the animation modules import.

The animation contract (``gaussianip.rig`` / ``gaussianip.motion``):
``load_rig(path) -> AvatarRig``, ``load_motion(path) -> Motion`` (``.num_frames``,
``.fps``), ``list_shipped_motions() -> list[Path]`` and
``animate_params(params, rig, motion, frame) -> dict[str, Tensor]``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor

log = logging.getLogger(__name__)

RIG_FILE = "avatar_rig.npz"


def animation_modules() -> tuple[ModuleType, ModuleType] | None:
    """(``gaussianip.rig``, ``gaussianip.motion``), or ``None`` where they do not import."""
    try:
        return importlib.import_module("gaussianip.rig"), importlib.import_module(
            "gaussianip.motion"
        )
    except ImportError as err:
        log.info("No motion panel: the animation modules do not import (%s).", err)
        return None


def posed_params(
    motion_module: ModuleType, params: dict[str, Tensor], rig: Any, motion: Any, frame: int
) -> dict[str, Tensor]:
    """The Gaussians of ``params`` posed at ``frame`` of ``motion`` (playback's only
    call into the animation code)."""
    return motion_module.animate_params(params, rig, motion, frame)


class MotionPanel:
    """GUI controls + a playback thread; ``show(params)`` draws posed Gaussians."""

    def __init__(
        self,
        server: Any,
        save_dir: Path,
        params: Callable[[], dict[str, Tensor]],
        show: Callable[[dict[str, Tensor]], None],
        extra_motion: Path | None = None,
    ) -> None:
        modules = animation_modules()
        rig_file = save_dir / RIG_FILE
        self.enabled = modules is not None and rig_file.is_file()
        self._params, self._show = params, show
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if not self.enabled:
            if modules is not None:
                log.info("No motion panel: %s does not exist (no rig in this run).", rig_file)
            return
        rig_module, self.motion_module = modules  # type: ignore[misc]
        self.rig = rig_module.load_rig(rig_file)
        self.motions: dict[str, Path] = {
            p.stem: p for p in self.motion_module.list_shipped_motions()
        }
        if extra_motion is not None:
            self.motions = {extra_motion.stem: extra_motion, **self.motions}
        with server.gui.add_folder("Motion"):
            self.choice = server.gui.add_dropdown("motion", ["rest pose", *self.motions])
            self.playing = server.gui.add_checkbox("play", initial_value=False)
            self.frame = server.gui.add_slider("frame", min=0, max=1, step=1, initial_value=0)
        self.motion: Any = None
        self.choice.on_update(lambda _: self.select(self.choice.value))
        self.frame.on_update(lambda _: self.draw())
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()
        if extra_motion is not None:
            self.choice.value = extra_motion.stem

    def select(self, name: str) -> None:
        """Load motion ``name`` (or the rest pose) and draw its first frame."""
        with self._lock:
            if name == "rest pose":
                self.motion = None
            else:
                self.motion = self.motion_module.load_motion(self.motions[name])
                self.frame.max = max(1, int(self.motion.num_frames) - 1)
        self.frame.value = 0
        self.draw()

    def draw(self) -> None:
        with self._lock:
            if self.motion is None:
                self._show(self._params())
                return
            frame = min(int(self.frame.value), int(self.motion.num_frames) - 1)
            self._show(posed_params(self.motion_module, self._params(), self.rig, self.motion,
                                    frame))  # fmt: skip

    def _play(self) -> None:
        """Advance the slider at the motion's frame rate while "play" is ticked (frames
        are skipped, not slowed, where drawing takes longer than a frame)."""
        last = time.perf_counter()
        while not self._stop.wait(0.01):
            now = time.perf_counter()
            motion = self.motion
            if not self.playing.value or motion is None:
                last = now
                continue
            step = int((now - last) * float(motion.fps))
            if step >= 1:
                last += step / float(motion.fps)
                self.frame.value = (int(self.frame.value) + step) % int(motion.num_frames)

    def stop(self) -> None:
        self._stop.set()
