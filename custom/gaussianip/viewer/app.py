"""The avatar viewer: a viser server showing a run's Gaussians, rendered by the browser
(no GPU needed here). Controls: which avatar (final / stage 1), and, where the run has a
rig, the motion panel."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gaussianip.gaussians import load_ply
from gaussianip.run_folder import stage_plys
from gaussianip.viewer.motion_panel import MotionPanel
from gaussianip.viewer.splats import splat_arrays

log = logging.getLogger(__name__)

STAGE_LABELS = {"final": "final avatar", "stage1": "stage 1"}
# The evaluation turntable's front camera (data.eval_*: 1.8 m away, 5 deg up, 70 deg fov).
FRONT_DISTANCE, FRONT_ELEVATION, FRONT_FOVY = 1.8, 5.0, 70.0


def front_camera(
    distance: float = FRONT_DISTANCE, elevation: float = FRONT_ELEVATION
) -> tuple[np.ndarray, np.ndarray]:
    """(position, look-at) of our front evaluation view (azimuth 0), world coordinates."""
    from gaussianip.cameras import spherical_to_position

    eye = spherical_to_position(torch.tensor([elevation]), torch.tensor([0.0]),
                                torch.tensor([distance]))[0]  # fmt: skip
    return eye.double().numpy(), np.zeros(3)


class AvatarViewer:
    """A running viewer of ``run_dir``; ``stop()`` ends it."""

    def __init__(
        self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080,
        motion: Path | None = None,
    ) -> None:  # fmt: skip
        import viser

        self.plys = stage_plys(run_dir)  # AssetError before any server starts
        self.params: dict[str, dict[str, Tensor]] = {
            stage: load_ply(path) for stage, path in self.plys.items()
        }
        self.server = viser.ViserServer(host=host, port=port, label="GaussianIP", verbose=False)
        self.server.gui.configure_theme(show_logo=False, show_share_button=False)
        self.server.scene.set_up_direction("+z")  # our world: z up, metres
        eye, target = front_camera()
        self.server.initial_camera.position = tuple(eye)
        self.server.initial_camera.look_at = tuple(target)
        self.server.initial_camera.fov = math.radians(FRONT_FOVY)
        stages = [STAGE_LABELS[s] for s in ("final", "stage1") if s in self.params]
        self.stage = self.server.gui.add_dropdown("avatar", stages, initial_value=stages[0])
        self.stage.on_update(lambda _: self.motion.draw() if self.motion.enabled else
                             self.show(self.current_params()))  # fmt: skip
        save_dir = next(iter(self.plys.values())).parent
        self.motion = MotionPanel(self.server, save_dir, self.current_params, self.show, motion)
        self.show(self.current_params())

    def current_params(self) -> dict[str, Tensor]:
        stage = {v: k for k, v in STAGE_LABELS.items()}[self.stage.value]
        return self.params[stage]

    def show(self, params: dict[str, Tensor]) -> None:
        """Replace the splats in the scene (same node name: viser swaps them)."""
        self.server.scene.add_gaussian_splats("/avatar", **splat_arrays(params))

    @property
    def url(self) -> str:
        host = self.server.get_host()
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "") else host
        return f"http://{shown}:{self.server.get_port()}"

    def stop(self) -> None:
        self.motion.stop()
        self.server.stop()
