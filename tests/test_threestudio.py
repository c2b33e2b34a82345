"""The threestudio layer, against a real threestudio checkout (THREESTUDIO_ROOT).

Skipped, with the reason, where no checkout is configured (see threestudio_support.py).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threestudio_support import import_threestudio, threestudio_env

REPO = Path(__file__).resolve().parents[1]
OUR_MODULES = {
    "gaussianip-human-camera-datamodule",
    "gaussianip-gaussian-geometry",
    "gaussianip-gaussian-renderer",
    "gaussianip-prompt-processor",
    "gaussianip-hds-guidance",
    "gaussianip-system",
}


@pytest.fixture(scope="module")
def threestudio():
    module = import_threestudio()
    import gaussianip.threestudio_ext  # noqa: F401  (registers; a no-op if already done)

    return module


def test_importing_gaussianip_registers_our_modules():
    import_threestudio()  # skips without a checkout
    code = (
        "import gaussianip, threestudio\n"
        "print(sorted(k for k in threestudio.__modules__ if k.startswith('gaussianip-')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=threestudio_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert set(eval(out.stdout.strip().splitlines()[-1])) == OUR_MODULES


def test_launch_loads_the_linked_extension(tmp_path):
    root = import_threestudio() and Path(os.environ["THREESTUDIO_ROOT"]).resolve()
    # A scratch host folder with the layout launch.py expects, linked like install.sh does.
    (tmp_path / "threestudio").mkdir()
    (tmp_path / "launch.py").symlink_to(root / "launch.py")
    subprocess.run(["bash", str(REPO / "scripts/link_threestudio.sh"), str(tmp_path)], check=True)
    code = (
        "import sys, threestudio; sys.path.insert(0, '.'); import launch\n"
        "launch.load_custom_modules()\n"
        "print(sorted(k for k in threestudio.__modules__ if k.startswith('gaussianip-')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=threestudio_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "IMPORT FAILED" not in out.stdout
    assert set(eval(out.stdout.strip().splitlines()[-1])) == OUR_MODULES


def test_datamodule_batches(threestudio):
    dm = threestudio.find("gaussianip-human-camera-datamodule")(
        {
            "batch_size": 3,
            "height": 64,
            "width": 64,
            "n_val_views": 2,
            "eval_height": 32,
            "eval_width": 32,
        }
    )
    dm.setup("fit")
    train = dm.train_dataloader()
    batch = next(iter(train))
    assert batch["c2w"].shape == (3, 4, 4) and batch["height"] == 64
    assert set(batch) >= {"mvp_mtx", "fovy", "elevation", "azimuth", "camera_distances"}
    assert (batch["view_kind"] == 0).all()  # step 0: full-body views only
    # threestudio's hook: update_if_possible(dataset, epoch, global_step)
    from threestudio.utils.base import update_if_possible

    update_if_possible(train.dataset, 0, 5000)
    assert train.dataset.step == 5000
    val = next(iter(dm.val_dataloader()))
    assert val["c2w"].shape == (1, 4, 4) and val["index"].tolist() == [0]
    assert val["height"] == 32


def test_bad_datamodule_config_is_named(threestudio):
    from gaussianip.errors import ConfigError

    with pytest.raises(ConfigError, match="data.height"):
        threestudio.find("gaussianip-human-camera-datamodule")({"height": 100})


def test_geometry_and_renderer_from_config(threestudio):
    geometry = threestudio.find("gaussianip-gaussian-geometry")(
        {"gaussians": {"init_num_points": 3000}, "seed": 1}
    )
    assert geometry.model.num_gaussians == 3000
    assert geometry.strategy.refine_every == 500 and geometry.strategy.no_grow_radius == 0
    hands = threestudio.find("gaussianip-gaussian-geometry")(
        {"gaussians": {"init_num_points": 100}, "no_densify_near_hands": 0.08,
         "densify": {"refine_stop_iter": 1500}}
    )  # fmt: skip
    assert hands.strategy.no_grow_radius == 0.08 and len(hands.strategy.no_grow_centers) == 2
    assert hands.strategy.refine_stop_iter == 1500
    background = threestudio.find("solid-color-background")({})
    material = threestudio.find("no-material")({})
    renderer = threestudio.find("gaussianip-gaussian-renderer")(
        {"backend": "torch"}, geometry=geometry, material=material, background=background
    )
    dm = threestudio.find("gaussianip-human-camera-datamodule")(
        {"n_val_views": 1, "eval_height": 64, "eval_width": 64}
    )
    dm.setup("validate")
    out = renderer(**next(iter(dm.val_dataloader())))
    assert out["comp_rgb"].shape == (1, 64, 64, 3) and out["opacity"].shape == (1, 64, 64, 1)
    assert out["opacity"][0, 32, 32, 0] > 0.5  # the body is in the middle of the front view
    assert out["opacity"][0, 2, 2, 0] < 1e-3  # and not in the corner
    grey = out["comp_rgb"][0, 32, 32]
    assert torch.allclose(grey, grey.mean().expand(3), atol=1e-4)  # grey initial colour


def test_geometry_config_errors_are_named(threestudio):
    from gaussianip.errors import BodyModelError, ConfigError

    with pytest.raises(ConfigError, match="geometry.gaussians.init_num_point"):
        threestudio.find("gaussianip-gaussian-geometry")({"gaussians": {"init_num_point": 5}})
    with pytest.raises(BodyModelError, match="robot"):
        threestudio.find("gaussianip-gaussian-geometry")({"body": {"name": "robot"}})


def test_geometry_seeds_from_a_ply(threestudio, tmp_path):
    from gaussianip.gaussians import GaussianModel, save_ply

    model = GaussianModel.from_points(torch.rand(50, 3))
    path = save_ply(tmp_path / "seed.ply", dict(model.params))
    geometry = threestudio.find("gaussianip-gaussian-geometry")({"init_ply": str(path)})
    assert torch.equal(geometry.model.means, model.means)


def test_hds_guidance_follows_threestudio_call_convention(threestudio):
    prompt_processor = threestudio.find("gaussianip-prompt-processor")(
        {"prompt": "a photo of an astronaut", "face_analyser": "stand-in"}
    )
    guidance = threestudio.find("gaussianip-hds-guidance")(
        {"prior": {"preset": "tiny"}, "guidance": {"resolution": 64}}
    )
    dm = threestudio.find("gaussianip-human-camera-datamodule")(
        {"batch_size": 2, "height": 32, "width": 32}
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    from threestudio.utils.base import update_if_possible

    update_if_possible(guidance, 0, 1500)
    assert guidance.global_step == 1500
    rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
    out = guidance(rgb, prompt_processor(), **batch)  # as threestudio systems call it
    out["loss_sds"].backward()
    assert set(out) >= {"loss_sds", "grad_norm"} and torch.isfinite(out["loss_sds"])
    assert rgb.grad.abs().sum() > 0
    from gaussianip.errors import ConfigError

    with pytest.raises(ConfigError, match="prompt is empty"):
        threestudio.find("gaussianip-prompt-processor")({"prompt": " ", "face_image": None,
                                                          "repel_face_image": None})  # fmt: skip


def _tiny_config(tmp_path, stage1_steps: int, reconstruction_steps: int, *extra: str):
    """The tiny config through threestudio's own loader, shrunk to seconds on a CPU."""
    from threestudio.utils.config import load_config

    return load_config(
        str(REPO / "custom/gaussianip/configs/gaussianip-tiny.yaml"),
        cli_args=[f"exp_root_dir={tmp_path}", "data.n_val_views=2", "data.n_test_views=4",
                  "data.eval_height=32", "data.eval_width=32", "data.ring_height=32",
                  "data.ring_width=32", "system.geometry.gaussians.init_num_points=1000",
                  f"system.stage1.steps={stage1_steps}",
                  f"system.reconstruction.steps={reconstruction_steps}", *extra],
        n_gpus=1,
    )  # fmt: skip


def test_system_runs_the_whole_method_with_threestudio_config_loading(threestudio, tmp_path):
    """threestudio's own config loader and a Lightning trainer on the CPU (launch.py itself
    insists on a GPU): the tiny config, stage 1 + refinement + reconstruction in few steps."""
    import json

    import pytorch_lightning as pl

    from gaussianip.gaussians import load_ply

    motion = ("system.animation.motion=load/motions/turn.npz", "system.animation.max_frames=2",
              "system.animation.resolution=32")  # fmt: skip
    export = ("system.export.faces=2000", "system.export.texture_size=64",  # small and quick
              "system.export.views_per_ring=6", "system.export.ring_resolution=48",
              "system.export.motion=load/motions/wave.npz")  # fmt: skip
    cfg = _tiny_config(tmp_path, 2, 2, *motion, *export)
    assert cfg.trainer.max_steps == 4  # the YAML's ${add:...} in threestudio's loader
    dm = threestudio.find(cfg.data_type)(cfg.data)
    system = threestudio.find(cfg.system_type)(cfg.system, resumed=False)
    system.set_save_dir(os.path.join(cfg.trial_dir, "save"))
    trainer = pl.Trainer(accelerator="cpu", max_steps=50, val_check_interval=4,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         inference_mode=False, enable_progress_bar=False)  # fmt: skip
    trainer.fit(system, datamodule=dm)
    assert trainer.global_step == 4  # max_steps lowered to stage 1 + reconstruction
    save = Path(cfg.trial_dir) / "save"
    for name in ("stage1.ply", "gaussians.ply", "vcr_views.png", "turntable.mp4",
                 "metrics.json", "vcr/view_15.png"):  # fmt: skip
        assert (save / name).is_file(), name
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["phases"]["reconstruction"]["steps"] == 2
    assert load_ply(save / "gaussians.ply")["means"].shape[1] == 3
    assert (save / "avatar_rig.npz").is_file() and not (save / "animation.mp4").exists()
    trainer.test(system, datamodule=dm)
    assert len(list(save.glob("it4-test/*.png"))) == 4
    assert (save / "animation.mp4").is_file()  # system.animation.motion, in the test stage

    # launch.py --export: Lightning's predict loop writes the avatar as a rigged GLB
    import pygltflib

    from gaussianip.rig import load_rig

    trainer.predict(system, datamodule=dm)
    glb = save / "it4-export" / "avatar.glb"
    doc = pygltflib.GLTF2().load(str(glb))
    joints = load_rig(save / "avatar_rig.npz").skeleton.num_joints
    assert len(doc.skins) == 1 and len(doc.skins[0].joints) == joints
    assert len(doc.animations) == 1  # system.export.motion, baked as a clip
    trainer.predict(system, datamodule=dm)  # a second export never replaces the first
    assert (save / "it4-export" / "avatar-2.glb").is_file() and glb.is_file()


def test_system_resumes_from_a_lightning_checkpoint(threestudio, tmp_path):
    """threestudio's `resume=`: a run stopped after 2 steps of stage 1 continues from its
    checkpoint with the same Gaussians and ends at the method's step count."""
    import pytorch_lightning as pl

    cfg = _tiny_config(tmp_path, stage1_steps=3, reconstruction_steps=2)

    def trainer(max_steps: int) -> pl.Trainer:
        return pl.Trainer(accelerator="cpu", max_steps=max_steps, val_check_interval=100,
                          num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                          inference_mode=False, enable_progress_bar=False)  # fmt: skip

    dm = threestudio.find(cfg.data_type)(cfg.data)
    first = threestudio.find(cfg.system_type)(cfg.system, resumed=False)
    first.set_save_dir(os.path.join(cfg.trial_dir, "save"))
    stopped = trainer(2)
    stopped.fit(first, datamodule=dm)
    ckpt = tmp_path / "last.ckpt"
    stopped.save_checkpoint(ckpt)
    means = first.pipeline.model.params["means"].detach().clone()

    second = threestudio.find(cfg.system_type)(cfg.system, resumed=True)
    second.set_save_dir(os.path.join(cfg.trial_dir, "save"))
    dm = threestudio.find(cfg.data_type)(cfg.data)
    resumed = trainer(5)
    resumed.fit(second, datamodule=dm, ckpt_path=str(ckpt))
    assert resumed.global_step == 5  # 3 of stage 1 + 2 of reconstruction, 2 of them before
    assert second.pipeline.metrics["phases"]["reconstruction"]["steps"] == 2
    save = Path(cfg.trial_dir) / "save"
    assert (save / "gaussians.ply").is_file() and (save / "stage1.ply").is_file()
    # the checkpoint carried the Gaussians as they were after step 2 (not re-initialised)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["gaussianip"]
    torch.testing.assert_close(state["params"]["means"], means)
    assert state["step"] == 1
