"""The whole stage-1 gradient path, proven with an analytic prior and no weights.

The "prior" knows the target images x0 of the current cameras exactly: its noise
prediction for z_t = sqrt(a) z + sqrt(1 - a) eps is eps_pos = (z_t - sqrt(a) x0) /
sqrt(1 - a), and the unconditional (and repelling) prediction is the noise itself. The HDS
gradient is then w(t) * (gamma * sqrt(a / (1 - a)) * (z - x0) + delta_D), which pulls the
renders towards the targets; if a sign or a scale were wrong anywhere between
``hds_gradient`` and the Gaussian parameters, the error would not fall.
"""

import torch

from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.engine import Stage1Config, Stage1Trainer
from gaussianip.gaussians import GaussianConfig, GaussianModel, HumanDensifyStrategy, rgb_to_sh0
from gaussianip.guidance import hds_gradient, latent_loss_from_gradient
from gaussianip.render.views import render_views


def _alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


class AnalyticPrior:
    """Exact denoiser for the target model's renders; the images themselves are latents."""

    def __init__(self, target: GaussianModel, seed: int = 0) -> None:
        self.target, self.ac = target, _alphas_cumprod()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, rgb, batch, step):
        with torch.no_grad():
            x0 = render_views(self.target, batch)["comp_rgb"]
        z = rgb
        t = torch.randint(20, 980, (z.shape[0],), generator=self.generator)
        a = self.ac[t].view(-1, 1, 1, 1)
        eps = torch.randn(z.shape, generator=self.generator)
        z_t = a.sqrt() * z.detach() + (1 - a).sqrt() * eps
        eps_pos = (z_t - a.sqrt() * x0) / (1 - a).sqrt()
        grad = hds_gradient(eps_pos, eps, eps, t, self.ac, guidance_scale=7.5)
        return {"loss_sds": latent_loss_from_gradient(z, grad)}


def _blob(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 0.3


def test_stage1_loop_drives_renders_to_the_targets():
    points = _blob(1500, 0)
    cfg = GaussianConfig(sh0_lr=0.02, opacities_lr=0.05)
    model = GaussianModel.from_points(points, cfg)
    target = GaussianModel.from_points(points, cfg)
    with torch.no_grad():  # target: colour by position, more opaque
        target.params["sh0"][:, 0] = rgb_to_sh0((points / 0.6 + 0.5).clamp(0, 1))
        target.params["opacities"].fill_(2.0)
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=4, height=32, width=32,
                                                   camera_distance_range=(1.3, 1.5)))  # fmt: skip
    evaluation = sampler.ring(4, 10.0, 1.4, 60.0, 32, 32)

    def error() -> float:
        with torch.no_grad():
            a = render_views(model, evaluation)["comp_rgb"]
            b = render_views(target, evaluation)["comp_rgb"]
        return float(((a - b) ** 2).mean())

    start = error()
    trainer = Stage1Trainer(
        model,
        sampler,
        AnalyticPrior(target),
        Stage1Config(steps=60, lambda_opacity=0.0, lambda_scale=0.0),
        HumanDensifyStrategy(refine_start_iter=10_000),  # fixed set: compare like with like
    )
    trainer.run()
    end = error()
    assert end < start / 4, (start, end)


def test_one_step_reports_losses_and_densifies_on_schedule():
    model = GaussianModel.from_points(_blob(400, 1))
    target = GaussianModel.from_points(_blob(400, 1))
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=2, height=16, width=16))
    strategy = HumanDensifyStrategy(refine_start_iter=0, refine_every=2, grow_grad2d=0.0)
    trainer = Stage1Trainer(model, sampler, AnalyticPrior(target), Stage1Config(steps=3), strategy)
    logs = [trainer.step(i) for i in range(3)]
    assert {"loss", "loss_sds", "loss_opacity", "loss_scale", "num_gaussians"} <= set(logs[0])
    assert logs[0]["num_gaussians"] == 400
    assert logs[2]["num_gaussians"] > 400  # grew at step 2 (every visible one above 0)
