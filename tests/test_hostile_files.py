"""Every file may be hostile or broken, every promised output exists (issue 25).

One section per class of the issue: untrusted files; a run finished only when every
output exists (from another working folder, resumed after a kill in the last window);
two commands on one run folder; nothing hangs or eats memory; environment faults; flags
a command cannot honour; warnings a user can act on.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gaussianip import cli
from gaussianip.errors import AssetError, ConfigError
from gaussianip.gaussians import load_ply, save_ply

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "custom/gaussianip/configs/gaussianip-tiny.yaml"
PORTRAIT = "load/portraits/eileen_collins_nasa.png"
# The whole method at its smallest: every phase and output, a few seconds of compute.
MINI = [
    "system.stage1.steps=2", "system.guidance.timestep_schedule_cfg.total_steps=2",
    "system.reconstruction.steps=1", "system.reconstruction.batch_size=1",
    "system.reconstruction.lambda_face=0", "system.reconstruction.lambda_hand=0",
    "data.ring_size=8", "data.ring_height=32", "data.ring_width=32", "data.height=32",
    "data.width=32", "data.batch_size=1", "data.eval_height=32", "data.eval_width=32",
    "data.n_val_views=1", "system.vcr.refine_steps=1", "system.outputs.turntable_frames=1",
    "system.outputs.summary_size=64", "system.geometry.gaussians.init_num_points=300",
    "system.repel_face_image=null",
]  # fmt: skip


class Payload:
    """Pickled, it would touch a file when loaded (it must never be)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _gaussians(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * 0.3,
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        "scales": torch.full((n, 3), -4.0),
        "opacities": torch.full((n,), 1.0),
        "sh0": torch.rand(n, 1, 3, generator=g) - 0.5,
        "shN": torch.zeros(n, 0, 3),
    }


def _run_folder(tmp_path: Path, overrides: list[str] | None = None) -> Path:
    """A run folder as `gaussianip run` leaves it before its first checkpoint."""
    from gaussianip.engine.config import load_run_config

    run_dir = tmp_path / "run@1"
    (run_dir / "save").mkdir(parents=True)
    (run_dir / "ckpts").mkdir()
    OmegaConf.save(load_run_config(str(TINY), overrides or []), run_dir / "config.yaml")
    return run_dir


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "weights_only=False" not in err, err[-2000:]


# ------------------------------------------------------------------ 1. untrusted files


def test_resume_refuses_a_pickled_checkpoint_without_running_it(tmp_path, capsys):
    run_dir = _run_folder(tmp_path)
    marker = tmp_path / "payload-ran"
    torch.save({"step": 3, "params": {}, "evil": Payload(marker)}, run_dir / "ckpts/last.pt")
    start = time.perf_counter()
    code = cli.main(["run", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - start < 30
    assert f"'{run_dir / 'ckpts' / 'last.pt'}'" in err and "not loaded" in err
    assert not marker.exists()
    _no_traceback(err)


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    from gaussianip.checkpoints import load_latest_checkpoint, save_checkpoint

    folder = tmp_path / "ckpts"
    for step in (4, 9):
        save_checkpoint(folder, {"step": step, "params": {"means": torch.zeros(5, 3)}})
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "prev.pt"]  # no .tmp
    last = folder / "last.pt"
    last.write_bytes(last.read_bytes()[:100])  # a disk that filled up mid-write
    with caplog.at_level(logging.WARNING):
        state, used = load_latest_checkpoint(folder)
    assert state["step"] == 4 and used.name == "prev.pt"
    assert (
        "last.pt' is truncated or damaged" in caplog.text and "previous checkpoint" in caplog.text
    )
    (folder / "prev.pt").write_bytes(b"")
    with pytest.raises(AssetError, match=r"last.pt' is truncated.*prev.pt' is empty"):
        load_latest_checkpoint(folder)


def test_a_python_tag_in_a_run_config_is_one_message(tmp_path, capsys):
    run_dir = _run_folder(tmp_path)
    marker = tmp_path / "payload-ran"
    text = (run_dir / "config.yaml").read_text()
    text = text.replace("name: gaussianip-tiny",
                        f"name: !!python/object/apply:os.system ['touch {marker}']")  # fmt: skip
    (run_dir / "config.yaml").write_text(text)
    save_ply(run_dir / "save" / "gaussians.ply", _gaussians())
    for argv in (["run", "--resume", str(run_dir)],
                 ["animate", str(run_dir), "--motion", "load/motions/wave.npz"]):  # fmt: skip
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert f"'{run_dir / 'config.yaml'}'" in err and "YAML tag" in err, err
        _no_traceback(err)
    assert not marker.exists()


def test_empty_and_nonfinite_plys_are_never_copied_silently(tmp_path, capsys, caplog):
    from plyfile import PlyData, PlyElement

    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
             "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
    empty = tmp_path / "empty.ply"
    PlyData([PlyElement.describe(np.empty(0, [(n, "f4") for n in names]), "vertex")]).write(
        str(empty)
    )
    splat = tmp_path / "e.splat"
    assert cli.main(["export", str(empty), "--format", "splat", "--out", str(splat)]) == 2
    err = capsys.readouterr().err
    assert "0 Gaussians" in err and str(empty) in err
    assert not splat.exists()
    _no_traceback(err)

    params = _gaussians(10)
    params["means"][2, 0] = float("nan")
    params["scales"][7, 1] = float("inf")
    save_ply(tmp_path / "bad.ply", params)
    for fmt in ("ply", "splat", "compressed-ply"):  # every format refuses them, counted
        out = tmp_path / f"out.{fmt}"
        assert cli.main(["export", str(tmp_path / "bad.ply"), "--format", fmt,
                         "--out", str(out)]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert "2 of the avatar's 10 Gaussians are broken" in err and "bad.ply" in err
        assert not out.exists()
    with caplog.at_level(logging.WARNING):  # readers that show the avatar leave them out
        shown = load_ply(tmp_path / "bad.ply")
    assert "2 of its 10 Gaussians have NaN or infinite values" in caplog.text
    assert shown["means"].shape[0] == 8 and all(torch.isfinite(v).all() for v in shown.values())
    every = {k: torch.full_like(v, float("nan")) for k, v in params.items()}
    save_ply(tmp_path / "nan.ply", every)
    with pytest.raises(AssetError, match="every one of its 10 Gaussians"):
        load_ply(tmp_path / "nan.ply")


def test_motion_npz_with_pickled_or_absurd_arrays_is_refused(tmp_path):
    from gaussianip.motion import load_motion

    marker = tmp_path / "payload-ran"
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, poses=np.array([Payload(marker)], dtype=object),
             mocap_frame_rate=np.array(30.0))  # fmt: skip
    with pytest.raises(AssetError, match="pickled"):
        load_motion(pickled)
    assert not marker.exists()
    # A header claiming 10^10 frames over a few bytes of data: refused from the header.
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as archive:
        with archive.open("poses.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (10**10, 165)}
            )
            member.write(b"\0" * 64)  # fmt: skip
    start = time.perf_counter()
    with pytest.raises(AssetError, match=r"unpacks to 12\.0 TB .*'poses' has shape"):
        load_motion(bomb)
    assert time.perf_counter() - start < 5


# ------------------------------------------------ 2. finished only with every output


def test_a_run_from_another_folder_killed_in_its_last_window_is_completed(
    tmp_path, monkeypatch, capsys
):
    """From a working folder outside the checkout: inputs are pinned to absolute paths in
    config.yaml; a kill while summary.png is written leaves no metrics.json, and
    `--resume` writes the missing outputs without training again."""
    from gaussianip.engine import pipeline as pipeline_module

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):
        raise Killed

    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(pipeline_module, "write_summary", killed)
    with pytest.raises(Killed):
        cli.main(["run", "--config", str(TINY), "--out", "out", *MINI])
    run_dir = next((work / "out").iterdir())
    save = run_dir / "save"
    recorded = OmegaConf.load(run_dir / "config.yaml").system.face_image
    assert recorded == str(REPO / PORTRAIT)  # found once, recorded absolute
    assert (save / "gaussians.ply").is_file() and not (save / "summary.png").exists()
    assert not (save / "metrics.json").exists()  # the finished record comes last
    assert torch.load(run_dir / "ckpts/last.pt", weights_only=True)["step"] == 2  # final

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)  # yet another working folder
    capsys.readouterr()
    assert cli.main(["run", "--resume", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run_dir} at step 3 of 3" in out  # nothing trained again
    for name in ("summary.png", "metrics.json", "turntable.mp4", "avatar_rig.npz",
                 "stage1.ply", "stage1_views.png", "vcr_views.png"):  # fmt: skip
        assert (save / name).is_file(), name
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["resumed"][0]["at_step"] == 3
    assert cli.main(["run", "--resume", str(run_dir)]) == 2
    assert "that run is finished" in capsys.readouterr().err


# ------------------------------------------------------- 3. two commands, one folder


def test_two_animations_at_once_both_keep_their_video(tmp_path):
    run_dir = tmp_path / "run"
    save_ply(run_dir / "save" / "gaussians.ply", _gaussians(200))
    (run_dir / "config.yaml").write_text("system:\n  body:\n    name: default\n")
    cmd = [sys.executable, "-m", "gaussianip", "animate", str(run_dir), "--motion",
           "load/motions/wave.npz", "--resolution", "16", "--max-frames", "2"]  # fmt: skip
    racers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]  # fmt: skip
    outs = [r.communicate(timeout=300) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], [o[1][-1500:] for o in outs]
    videos = sorted(p.name for p in (run_dir / "save").glob("animation*.mp4"))
    assert videos == ["animation-2.mp4", "animation.mp4"]
    named = sorted(next(v for v in videos if v in out) for out, _ in outs)
    assert named == videos  # each process names the video it wrote
    assert all((run_dir / "save" / v).stat().st_size > 0 for v in videos)
    assert not list((run_dir / "save").glob(".*tmp*"))  # no temporary file left


def test_reserved_names_are_unique_under_threads(tmp_path):
    from gaussianip.output_files import reserve_free_name

    names: list[Path] = []
    threads = [threading.Thread(target=lambda: names.append(
        reserve_free_name(tmp_path, "animation", ".mp4", "_ply"))) for _ in range(16)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 16
    assert all((tmp_path / (p.stem + "_ply")).is_dir() for p in names)


def test_an_export_landing_meanwhile_is_never_replaced(tmp_path, monkeypatch):
    """Another export writes the same name while this one reads the PLY: the name is
    claimed atomically after the read, so this one is refused and the other file stays."""
    import gaussianip.export as export

    save_ply(tmp_path / "save" / "gaussians.ply", _gaussians())
    out = tmp_path / "save" / "avatar.splat"
    read = export.load_ply

    def read_while_another_export_lands(*args, **kwargs):
        out.write_bytes(b"the other export's file")
        return read(*args, **kwargs)

    monkeypatch.setattr(export, "load_ply", read_while_another_export_lands)
    with pytest.raises(ConfigError, match="exists"):
        export.export_run(tmp_path, "splat")
    assert out.read_bytes() == b"the other export's file"
    monkeypatch.undo()
    assert export.export_run(tmp_path, "splat", force=True).stat().st_size == 64 * 32
    assert not list(out.parent.glob(".*tmp*"))


# ------------------------------------------------------- 4. no hangs, no surprises


def test_a_fifo_portrait_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "portrait.png"
    os.mkfifo(fifo)
    start = time.perf_counter()
    code = cli.main(["run", "--config", str(TINY), "--out", str(tmp_path / "out"),
                     f"system.face_image={fifo}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - start < 30
    assert "is a FIFO (named pipe), not a regular file" in err and str(fifo) in err
    from gaussianip.motion import load_motion

    for read in (load_ply, load_motion):
        with pytest.raises(AssetError, match="FIFO"):
            read(fifo)
    assert not (tmp_path / "out").exists()


def test_download_from_a_stalled_server_ends_naming_what_it_waited_for(tmp_path):
    """A server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    config = tmp_path / "full.yaml"
    config.write_text(f"extends: {REPO / 'custom/gaussianip/configs/gaussianip.yaml'}\n"
                      "system:\n  reconstruction:\n    lpips_pretrained: false\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", GAUSSIANIP_NETWORK_TIMEOUT="2",
               HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gaussianip", "download", "--config", str(config),
             "--no-faces", "--dir", str(tmp_path / "w")],
            capture_output=True, text=True, env=env, timeout=240,
        )  # fmt: skip
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"No answer from http://127.0.0.1:{port} within 2 s while fetching the base model" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("system.stage1.steps=1000000000000", "system.stage1.steps=1000000000000 .* years"),
        ("data.n_test_views=100000", "data.n_test_views=100000 .*6 hours"),
        ("system.outputs.turntable_frames=100000", "turntable_frames=100000"),
    ],
)
def test_sizes_that_imply_hours_are_refused_with_an_estimate(override, expected, tmp_path, capsys):
    start = time.perf_counter()
    code = cli.main(["run", "--config", str(TINY), "--out", str(tmp_path), override])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - start < 30
    assert re.search(expected, err), err
    assert "system.allow_long_run=true" in err and not any(tmp_path.iterdir())


def test_a_long_motion_is_refused_before_any_work_with_a_way_on(tmp_path):
    from gaussianip.animate import AnimateOptions, animate

    motion = tmp_path / "long.npz"
    np.savez(motion, poses=np.zeros((200_000, 66), np.float32), mocap_frame_rate=np.array(120.0))
    save_ply(tmp_path / "run" / "save" / "gaussians.ply", _gaussians())
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"50,000 video frames.*--max-frames 50000"):
        animate(AnimateOptions(run_dir=tmp_path / "run", motion=motion))
    assert time.perf_counter() - start < 10
    assert not list((tmp_path / "run" / "save").glob("animation*"))


# ------------------------------------------------------------ 5. environment faults


def test_a_full_disk_names_the_folder_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from gaussianip import checkpoints
    from gaussianip.errors import DiskFullError

    folder = tmp_path / "ckpts"
    checkpoints.save_checkpoint(folder, {"step": 1, "params": {"x": torch.zeros(4)}})

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    state = {"step": 2, "params": {"x": torch.zeros(1000)}}
    with pytest.raises(DiskFullError) as caught:
        checkpoints.save_checkpoint(folder, state)
    message = str(caught.value)
    assert f"'{folder / 'last.pt'}'" in message and f"free in '{folder}'" in message
    assert "needs about 3.9 KB" in message and "--resume" in message
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt"]  # no .tmp, still step 1
    monkeypatch.undo()
    assert checkpoints.load_latest_checkpoint(folder)[0]["step"] == 1


def test_a_full_disk_in_a_run_is_one_message(tmp_path, monkeypatch, capsys):
    """The checkpoint writer hits a full disk in a real run: one line naming the file and
    the folder's free space, no temporary file left in ckpts/."""

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr("gaussianip.engine.pipeline.GaussianIPPipeline.train_step",
                        lambda self, step, **kw: {"loss": 1.0})  # fmt: skip
    code = cli.main(["run", "--config", str(TINY), "--out", str(tmp_path), *MINI])
    err = capsys.readouterr().err
    (run_dir,) = tmp_path.iterdir()
    assert code == 2 and f"No space left to write '{run_dir / 'ckpts' / 'last.pt'}'" in err
    assert f"free in '{run_dir / 'ckpts'}'" in err and "--resume" in err
    assert list((run_dir / "ckpts").iterdir()) == []
    _no_traceback(err)


def test_a_run_without_the_disk_space_it_needs_is_refused_before_any_work(
    tmp_path, monkeypatch, capsys
):
    from gaussianip import disk_space

    monkeypatch.setattr(disk_space, "free_bytes", lambda path: 1000)
    code = cli.main(["run", "--config", str(TINY), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    # the tiny config's floor: 2000 Gaussians in 2 PLYs and 2 checkpoints, 16 views of 64 px
    assert code == 2 and "This run needs about 1.1 MB" in err and "1000 bytes is free" in err
    assert str(tmp_path / "out") in err and not any((tmp_path / "out").iterdir())


def test_an_over_long_run_name_is_refused_while_parsing(tmp_path, capsys):
    code = cli.main(["run", "--config", str(TINY), "--out", str(tmp_path), "name=" + "n" * 300])
    err = capsys.readouterr().err
    assert code == 2 and "name is 300 bytes long" in err and not any(tmp_path.iterdir())


def test_an_environment_oserror_is_one_line_naming_the_file(capsys, monkeypatch):
    def too_long(args):
        raise OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "a" * 300)

    monkeypatch.setitem(cli.COMMANDS, "preview", too_long)
    assert cli.main(["preview", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "is too long for the file system" in err and "aaaa" in err
    _no_traceback(err)


# ---------------------------------------------------------- 6. flags not honoured


def test_resume_with_out_is_refused(tmp_path, capsys):
    assert cli.main(["run", "--resume", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--out" in capsys.readouterr().err


def test_view_on_a_busy_port_fails_naming_the_port(tmp_path):
    from gaussianip.viewer import check_port_free

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"--port {port}: the port is in use on 127.0.0.1"):
            check_port_free("127.0.0.1", port)
    finally:
        busy.close()
    check_port_free("127.0.0.1", port)  # free again: no error


def test_a_motion_slower_than_the_video_is_not_shortened(tmp_path):
    from gaussianip.animate import video_fps, video_frames
    from gaussianip.motion import load_motion

    path = tmp_path / "slow.npz"
    np.savez(path, poses=np.zeros((120, 66), np.float32), mocap_frame_rate=np.array(0.8))
    motion = load_motion(path)  # 150 s
    with pytest.raises(ConfigError, match=r"--fps 30 is above .*0\.8 fps.*--fps 0\.8"):
        video_fps(motion, 30.0)
    fps = video_fps(motion, None)  # the default follows the motion
    frames = video_frames(motion, fps)
    assert fps == 0.8 and len(frames) / fps == pytest.approx(150.0)


def test_export_under_a_regular_file_is_a_clear_error(tmp_path, capsys):
    save_ply(tmp_path / "save" / "gaussians.ply", _gaussians())
    (tmp_path / "notes.txt").write_text("a file")
    out = tmp_path / "notes.txt" / "avatar.splat"
    assert cli.main(["export", str(tmp_path), "--format", "splat", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err
    _no_traceback(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_warmup_and_bench_without_a_gpu_do_not_send_the_user_in_a_circle(capsys):
    for argv in (["warmup"], ["warmup", "--device", "cpu"], ["bench"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.lower()
        assert "no cuda gpu here" in err and "run it on the gpu machine" in err, err
        assert "use --device cuda" not in err and "use --device cpu" not in err, err


# --------------------------------------------------------------------- 7. warnings


def test_only_the_users_own_long_prompts_are_warned_about(caplog):
    from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
    from gaussianip.prior.prompt_length import PromptLengthCheck
    from gaussianip.prior.tiny import tiny_tokenizer
    from gaussianip.refine.vcr import NEGATIVE_PROMPT

    check = PromptLengthCheck(tiny_tokenizer())  # a token a letter: both are cut
    with caplog.at_level(logging.WARNING):
        check.check([HDSGuidanceConfig().negative_prompt, NEGATIVE_PROMPT])
        assert caplog.text == ""
        check.check(["a photo of a woman " * 8])
    assert "tokens long" in caplog.text
