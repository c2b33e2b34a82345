import math

import numpy as np
import pytest
import torch
from plyfile import PlyData

from gaussianip.errors import AssetError, ConfigError
from gaussianip.gaussians import (
    SH_C0,
    GaussianConfig,
    GaussianModel,
    HumanDensifyStrategy,
    load_ply,
    save_ply,
)
from gaussianip.gaussians.model import knn_rms_distance


def _grid_points(n_side: int = 10, spacing: float = 0.01) -> torch.Tensor:
    axis = torch.arange(n_side) * spacing
    return torch.stack(torch.meshgrid(axis, axis, torch.zeros(1), indexing="ij"), -1).reshape(-1, 3)


def test_init_is_grey_isotropic_with_3dgs_opacity_and_knn_scale():
    points = _grid_points()
    model = GaussianModel.from_points(points)
    assert model.num_gaussians == 100 and model.sh_degree == 0
    rgb = model.sh_coeffs[:, 0] * SH_C0 + 0.5
    assert torch.allclose(rgb, torch.full_like(rgb, 0.5))
    assert torch.allclose(model.opacities, torch.full((100,), 0.1))
    # On a grid of spacing 0.01, an inner point's 3 nearest neighbours are all 0.01 away.
    inner = 5 * 10 + 5
    assert torch.allclose(model.scales[inner], torch.full((3,), 0.01), atol=1e-6)
    assert torch.equal(model.quats[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_knn_rms_distance_against_brute_force():
    points = torch.rand(200, 3, generator=torch.Generator().manual_seed(0))
    diff = points[:, None].double() - points[None].double()
    dist = diff.norm(dim=-1) + torch.eye(200) * 1e9
    brute = dist.topk(3, largest=False).values.pow(2).mean(dim=1).sqrt()
    assert torch.allclose(knn_rms_distance(points, 3).double(), brute, atol=1e-6)


def test_sh_degree_sets_coefficient_count_and_bad_values_raise():
    model = GaussianModel.from_points(_grid_points(), GaussianConfig(sh_degree=2))
    assert model.params["shN"].shape == (100, 8, 3) and model.sh_degree == 2
    with pytest.raises(ConfigError, match="sh_degree"):
        GaussianModel.from_points(_grid_points(), GaussianConfig(sh_degree=4))
    with pytest.raises(ConfigError, match="init_opacity"):
        GaussianModel.from_points(_grid_points(), GaussianConfig(init_opacity=1.0))


def test_optimizers_follow_the_method():
    model = GaussianModel.from_points(_grid_points())
    optimizers = model.make_optimizers()
    assert set(optimizers) == set(model.params)
    adam = optimizers["means"]
    assert adam.defaults["betas"] == (0.9, 0.99) and adam.defaults["eps"] == 1e-15


def test_ply_roundtrip_and_standard_fields(tmp_path):
    gen = torch.Generator().manual_seed(0)
    params = {
        "means": torch.randn(50, 3, generator=gen),
        "scales": torch.randn(50, 3, generator=gen),
        "quats": torch.randn(50, 4, generator=gen),
        "opacities": torch.randn(50, generator=gen),
        "sh0": torch.randn(50, 1, 3, generator=gen),
        "shN": torch.randn(50, 3, 3, generator=gen),  # SH degree 1
    }
    path = save_ply(tmp_path / "g.ply", params)
    names = PlyData.read(str(path))["vertex"].data.dtype.names
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(9)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert list(names) == expected
    # f_rest is channel-major: f_rest_1 is red's second higher band.
    vertex = PlyData.read(str(path))["vertex"]
    assert np.allclose(vertex["f_rest_1"], params["shN"][:, 1, 0].numpy())
    assert np.allclose(vertex["f_rest_3"], params["shN"][:, 0, 1].numpy())
    loaded = load_ply(path)
    for key, value in params.items():
        assert torch.equal(loaded[key], value), key
    assert not (tmp_path / "g.ply.tmp").exists()


def test_ply_errors_name_the_file(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        load_ply(tmp_path / "missing.ply")
    bad = tmp_path / "bad.ply"
    bad.write_text("not a ply")
    with pytest.raises(AssetError, match="bad.ply"):
        load_ply(bad)


def _fake_info(n: int, grad_value: float, radius: int = 2) -> dict:
    means2d = torch.zeros(1, n, 2, requires_grad=True)
    (means2d * grad_value).sum().backward()
    return {
        "means2d": means2d,
        "radii": torch.full((1, n, 2), radius, dtype=torch.int32),
        "width": 512,
        "height": 512,
        "n_cameras": 1,
        "gaussian_ids": None,
    }


def _strategy_run(steps: list[int], grad_value: float, **options) -> list[int]:
    model = GaussianModel.from_points(_grid_points())
    model.params["opacities"].data[:10] = -10.0  # 10 nearly transparent Gaussians
    optimizers = model.make_optimizers()
    strategy = HumanDensifyStrategy(**options)
    state = strategy.initialize_state(scene_scale=1.0)
    strategy.check_sanity(model.params, optimizers)
    counts = []
    for step in steps:
        strategy.step_post_backward(
            model.params, optimizers, state, step, _fake_info(model.num_gaussians, grad_value)
        )
        counts.append(model.num_gaussians)
    return counts


def test_densification_grows_above_the_gradient_threshold_and_prunes_transparent():
    # Screen-space gradient 1e-3 * 256 per pixel-unit is far above 2e-4: every visible
    # Gaussian is cloned (they are small: 0.01 < 0.015 world size) and 10 are pruned.
    counts = _strategy_run([499, 500], grad_value=1e-3)
    assert counts == [100, 2 * 100 - 10 - 10]  # clones of the pruned ones are pruned too


def test_no_growth_below_threshold_and_prune_only_phase_at_1800():
    counts = _strategy_run([500], grad_value=1e-9)
    assert counts == [90]  # only the 10 transparent ones go
    counts = _strategy_run([1700, 1799, 1800], grad_value=1e-3)
    assert counts == [100, 100, 90]  # no growth after 1700; prune-only at 1800


def test_default_thresholds_match_the_method():
    s = HumanDensifyStrategy()
    assert (s.prune_opa, s.grow_grad2d, s.grow_scale3d) == (0.04, 2e-4, 0.015)
    assert (s.refine_start_iter, s.refine_stop_iter, s.refine_every) == (200, 1700, 500)
    assert math.isclose(s.prune_scale2d * 1024, 20.0)  # 20 px of the 1024-px render


def test_no_growth_near_the_given_centres():
    # Grid points lie in [0, 0.09]^2; those within 0.035 m of the corner are not cloned.
    points = _grid_points()
    centre = torch.tensor([[0.09, 0.09, 0.0]])
    n_near = int(((points - centre).norm(dim=1) < 0.035).sum())
    counts = _strategy_run(
        [500], grad_value=1e-3, no_grow_centers=centre.tolist(), no_grow_radius=0.035
    )
    assert n_near > 0 and counts == [2 * 100 - 10 - 10 - n_near]
