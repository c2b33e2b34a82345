"""Feed a list of bad inputs to the command line and tabulate what each gave.

Every case goes through the command line's own entry point (``gaussianip.cli.main``,
in-process) with the tiny config, so the outcome is what a user sees: the exit status and
the ``gaussianip: error: ...`` line. No model is loaded: the pipeline is replaced by a
stand-in that does only what ``GaussianIPPipeline`` does before its first model (body
model, face analyser, identity of each portrait) and then stops; a case that got that far
passed every check.

    python3 scripts/bad_inputs_report.py            # prints a markdown table and a count

Beyond mistakes, it covers what users hand over in good faith: photos as phones and
editors write them (EXIF-rotated, 16-bit, palette, CMYK, 144 megapixels, animated: each
passes and the table says what it was read as), an over-long prompt (the warning the tiny
prior's tokenizer gives), devices, and run folders (a --resume while another process holds
the folder's lock, which a helper process does here; a lock left by a killed process).

And what an attacker or a broken disk hands over (issue 25): pickled and truncated
checkpoints, a python tag in a run's config.yaml, empty and NaN PLYs, pickled motions, a
FIFO as the portrait, a download server on 127.0.0.1 that accepts and never answers (run
as a separate process, since the Hugging Face client reads its endpoint at import), sizes
that imply hours, and flags a command cannot honour (``export``, ``animate`` and ``view``
command lines besides ``run``). A payload that ran would create a marker file, which the
report checks.

Two cases need a face detector that finds no face, or several: the stand-in analyser of
the tiny config always "finds" one, and insightface's model pack may not be installed, so
those two use a scripted analyser (said in the table). Run as root, the unreadable file is
simulated (opening it raises PermissionError), since root may read any file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

import gaussianip.photos
from gaussianip import cli
from gaussianip.faces import DetectedFace
from gaussianip.paths import CONFIG_DIR

CONFIG = "gaussianip-tiny.yaml"


class ChecksPassed(Exception):
    """Raised where the real pipeline would start loading the diffusion models."""


@dataclass
class Case:
    label: str  # what was wrong, for the table
    overrides: list[str]
    analyser: Callable | None = None  # a scripted face analyser instead of the config's
    args: list[str] = field(default_factory=list)  # extra command-line words
    refuse_reads: bool = False  # opening files fails with "permission denied"
    argv: list[str] | None = None  # a whole command line instead of `run --config ...`
    read: Path | None = None  # a portrait: add what it is read as (size, mean colour)
    env: dict[str, str] | None = None  # run as a separate process with these variables


def _faces(*boxes: tuple[float, float, float, float]) -> Callable:
    """A scripted face analyser that 'finds' faces with these boxes."""

    def analyse(image: np.ndarray) -> list[DetectedFace]:
        out = []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            landmarks = np.array([[x0, y0], [x1, y0], [(x0 + x1) / 2, (y0 + y1) / 2],
                                  [x0, y1], [x1, y1]], float)  # fmt: skip
            embedding = np.zeros(512, np.float32)
            embedding[i] = 1.0
            out.append(DetectedFace(np.array([x0, y0, x1, y1], float), landmarks, embedding, 1.0))
        return out

    return analyse


def make_files(folder: Path) -> dict[str, Path]:
    """Bad portraits and body-model files in ``folder``."""
    files = {}
    files["empty"] = folder / "empty.png"
    files["empty"].write_bytes(b"")
    files["locked"] = folder / "locked.png"
    Image.new("RGB", (128, 128)).save(files["locked"])
    files["locked"].chmod(0)
    files["text"] = folder / "notes.png"
    files["text"].write_text("this is not an image\n")
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8)).save(
        whole, format="PNG"
    )
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(whole.getvalue()[:400])
    files["zip"] = folder / "photo.jpg"
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("photo.jpg", whole.getvalue())
    files["tiny"] = folder / "tiny.png"
    Image.new("RGB", (32, 24), (200, 150, 120)).save(files["tiny"])
    files["small_face"] = folder / "small_face.png"  # the stand-in's face: half of 64 px
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(
        files["small_face"]
    )
    files["blank"] = folder / "blank.png"
    Image.new("L", (256, 256), 128).save(files["blank"])
    files["smplx_text"] = folder / "SMPLX_NEUTRAL.npz"
    files["smplx_text"].write_text("<html>Please log in to download</html>")
    files["smplx_partial"] = folder / "partial.npz"
    np.savez(files["smplx_partial"], v_template=np.zeros((10475, 3)), f=np.zeros((5, 3), int))
    files["empty_dir"] = folder / "smplx_empty"
    files["empty_dir"].mkdir()
    make_photos(folder, files)
    make_runs(folder, files)
    return files


def make_photos(folder: Path, files: dict[str, Path]) -> None:
    """Portraits as phones and editors write them (each should pass, read correctly)."""
    y, x = np.mgrid[0:768, 0:512]
    upright = np.stack([x // 2, y // 3, 255 - y // 3], axis=-1).astype(np.uint8)  # 512x768
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": the sensor's landscape pixels of a portrait photo
    files["phone"] = folder / "phone.jpg"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        files["phone"], quality=92, exif=exif
    )
    files["grey16"] = folder / "grey16.png"
    Image.fromarray((np.linspace(0, 40000, 256 * 256).reshape(256, 256)).astype(np.uint16)).save(
        files["grey16"]
    )
    files["palette"] = folder / "palette.png"
    Image.fromarray(upright).convert("P", palette=Image.Palette.ADAPTIVE).save(
        files["palette"], transparency=0
    )
    files["cmyk"] = folder / "cmyk.jpg"
    Image.fromarray(upright).convert("CMYK").save(files["cmyk"], quality=92)
    files["huge"] = folder / "huge.jpg"  # 144 megapixels, above Pillow's bomb warning
    Image.new("L", (12000, 12000), 120).save(files["huge"], quality=50)
    files["animated"] = folder / "animated.gif"
    frames = [Image.fromarray(upright), Image.fromarray(255 - upright)]
    frames[0].save(files["animated"], save_all=True, append_images=frames[1:], duration=200)


def make_runs(folder: Path, files: dict[str, Path]) -> None:
    """Run folders: one whose lock a killed process left, one a live process holds."""
    from omegaconf import OmegaConf

    from gaussianip.engine.config import load_run_config

    config = load_run_config(CONFIG, [])
    for name in ("stale_run", "busy_run"):
        files[name] = folder / name
        (files[name] / "save").mkdir(parents=True)
        OmegaConf.save(config, files[name] / "config.yaml")
    (files["stale_run"] / "run.lock").write_text(
        '{"pid": 999999, "host": "old-host", "started": "2026-01-01 10:00:00"}\n'
    )
    files["preview_file"] = folder / "preview.txt"
    files["preview_file"].write_text("a file, not a folder")
    make_hostile(folder, files, config)


class Payload:
    """Pickled, it would create a file when loaded (the report checks it never is)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def make_hostile(folder: Path, files: dict[str, Path], config) -> None:
    """Files that are hostile or broken: checkpoints, run configs, PLYs, motions, a FIFO."""
    import torch
    from omegaconf import OmegaConf

    from gaussianip.checkpoints import save_checkpoint
    from gaussianip.gaussians import save_ply

    files["marker"] = folder / "payload-ran"
    files["fifo"] = folder / "portrait-fifo.png"
    os.mkfifo(files["fifo"])
    for name in ("pickled_ckpt", "truncated_ckpt", "tagged_config"):
        files[name] = folder / name
        (files[name] / "save").mkdir(parents=True)
        OmegaConf.save(config, files[name] / "config.yaml")
    (files["pickled_ckpt"] / "ckpts").mkdir()
    torch.save({"step": 3, "params": {}, "x": Payload(files["marker"])},
               files["pickled_ckpt"] / "ckpts" / "last.pt")  # fmt: skip
    for step in (3, 7):
        save_checkpoint(files["truncated_ckpt"] / "ckpts", {"step": step, "params": {}})
    last = files["truncated_ckpt"] / "ckpts" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    text = (files["tagged_config"] / "config.yaml").read_text()
    tag = f"!!python/object/apply:os.system ['touch {files['marker']}']"
    text = text.replace("name: gaussianip-tiny", f"name: {tag}")
    (files["tagged_config"] / "config.yaml").write_text(text)
    # a finished run with a small avatar, for export / animate / view
    files["run"] = folder / "finished_run"
    g = torch.Generator().manual_seed(0)
    params = {"means": torch.randn(64, 3, generator=g) * 0.3,
              "quats": torch.randn(64, 4, generator=g),
              "scales": torch.full((64, 3), -4.0), "opacities": torch.ones(64),
              "sh0": torch.zeros(64, 1, 3), "shN": torch.zeros(64, 0, 3)}  # fmt: skip
    save_ply(files["run"] / "save" / "gaussians.ply", params)
    (files["run"] / "config.yaml").write_text("system:\n  body:\n    name: default\n")
    nan = {k: v.clone() for k, v in params.items()}
    nan["means"][:3, 0] = float("nan")
    files["nan_ply"] = save_ply(folder / "nan.ply", nan)
    files["empty_ply"] = folder / "empty.ply"
    files["empty_ply"].write_text(
        "ply\nformat ascii 1.0\nelement vertex 0\n"
        + "".join(f"property float {n}\n" for n in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2",
                  "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"))
        + "end_header\n"
    )  # fmt: skip
    files["pickled_motion"] = folder / "pickled_motion.npz"
    np.savez(files["pickled_motion"], poses=np.array([Payload(files["marker"])], dtype=object),
             mocap_frame_rate=np.array(30.0))  # fmt: skip
    files["long_motion"] = folder / "long_motion.npz"
    np.savez(files["long_motion"], poses=np.zeros((200_000, 66), np.float32),
             mocap_frame_rate=np.array(120.0))  # fmt: skip
    files["slow_motion"] = folder / "slow_motion.npz"
    np.savez(files["slow_motion"], poses=np.zeros((40, 66), np.float32),
             mocap_frame_rate=np.array(10.0))  # fmt: skip
    files["note"] = folder / "note.txt"
    files["note"].write_text("a file")
    files["full_yaml"] = folder / "full-no-lpips.yaml"
    files["full_yaml"].write_text(
        f"extends: {CONFIG_DIR / 'gaussianip.yaml'}\n"
        "system:\n  reconstruction:\n    lpips_pretrained: false\n"
    )


HOLD_LOCK = """
import sys, time
from gaussianip.run_lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def cases(files: dict[str, Path], ports: dict[str, int]) -> list[tuple[str, Case]]:
    portrait = "load/portraits/eileen_collins_nasa.png"
    face = "system.face_image="
    return [
        # portraits
        ("portrait", Case("missing path", [face + "load/portraits/nobody.png"])),
        ("portrait", Case("a folder", [face + "load/portraits"])),
        ("portrait", Case("unreadable file (no read permission)", [face + str(files["locked"])],
                          refuse_reads=os.geteuid() == 0)),  # root reads anything: simulated
        ("portrait", Case("empty file (0 bytes)", [face + str(files["empty"])])),
        ("portrait", Case("not an image (text)", [face + str(files["text"])])),
        ("portrait", Case("truncated PNG", [face + str(files["truncated"])])),
        ("portrait", Case("a zip named .jpg", [face + str(files["zip"])])),
        ("portrait", Case("image too small (32x24)", [face + str(files["tiny"])])),
        ("portrait", Case("face too small (64x64 photo)", [face + str(files["small_face"])])),
        ("portrait", Case("blank image (uniform grey)", [face + str(files["blank"])])),
        ("portrait", Case("no face (scripted analyser: 0 faces)",
                          [face + portrait, "system.repel_face_image=null"], _faces())),
        ("portrait", Case("3 faces (scripted analyser)",
                          [face + portrait, "system.repel_face_image=null"],
                          _faces((0, 0, 60, 60), (300, 80, 520, 330), (600, 0, 660, 70)))),
        ("portrait", Case("repel portrait missing",
                          ["system.repel_face_image=load/portraits/nobody.jpg"])),
        # prompts
        ("prompt", Case("empty", ["system.prompt_processor.prompt="])),
        ("prompt", Case("only whitespace", ["system.prompt_processor.prompt='   '"])),
        # keys
        ("key", Case("typo in a key", ["system.stage1.stepz=3"])),
        ("key", Case("typo in a section", ["system.guidence.guidance_scale=5"])),
        ("key", Case("typo at the top level", ["sytem.stage1.steps=3"])),
        ("key", Case("not key=value", ["steps"])),
        ("key", Case("value not YAML", ["system.stage1.steps=["])),
        # values
        ("value", Case("steps < 1", ["system.stage1.steps=0"])),
        ("value", Case("reconstruction steps < 1", ["system.reconstruction.steps=0"])),
        ("value", Case("batch size < 1", ["system.reconstruction.batch_size=0"])),
        ("value", Case("guidance resolution not a multiple of 8",
                       ["system.guidance.resolution=100"])),
        ("value", Case("render height not a multiple of 8", ["data.height=100"])),
        ("value", Case("ring size not a multiple of 8", ["data.ring_size=12"])),
        ("value", Case("probability > 1", ["data.head_prob=1.5"])),
        ("value", Case("probability < 0", ["data.back_prob=-0.2"])),
        ("value", Case("lambda_self > 1", ["system.vcr.lambda_self=2"])),
        ("value", Case("negative guidance scale", ["system.guidance.guidance_scale=-1"])),
        ("value", Case("NaN guidance scale", ["system.guidance.guidance_scale=nan"])),
        ("value", Case("a word for a number", ["system.stage1.steps=many"])),
        ("value", Case("unknown rasterizer", ["system.stage1.backend=opengl"])),
        ("value", Case("seed not an integer", ["seed=abc"])),
        # body model
        ("body", Case("unknown body model", ["system.body.name=smpl"])),
        ("body", Case("SMPL-X files missing", ["system.body.name=smplx",
                                               f"system.body.model_path={files['empty_dir']}"])),
        ("body", Case("SMPL-X file not an .npz (failed download)",
                      ["system.body.name=smplx", f"system.body.model_path={files['smplx_text']}"])),
        ("body", Case("SMPL-X .npz lacking arrays",
                      ["system.body.name=smplx",
                       f"system.body.model_path={files['smplx_partial']}"])),
        # photos as phones and editors make them: read upright, in their colours
        ("photo", Case("phone JPEG stored sideways (EXIF rotate 90)",
                       [face + str(files["phone"])], read=files["phone"])),
        ("photo", Case("16-bit greyscale PNG", [face + str(files["grey16"])],
                       read=files["grey16"])),
        ("photo", Case("palette PNG with transparency", [face + str(files["palette"])],
                       read=files["palette"])),
        ("photo", Case("CMYK JPEG", [face + str(files["cmyk"])], read=files["cmyk"])),
        ("photo", Case("12000x12000 JPEG (144 megapixels)", [face + str(files["huge"])],
                       read=files["huge"])),
        ("photo", Case("animated GIF", [face + str(files["animated"])],
                       read=files["animated"])),
        # prompts the text encoder cannot read whole
        ("prompt", Case("longer than the text encoder's 77 tokens",
                        ["system.prompt_processor.prompt='" + LONG_PROMPT + "'"])),
        # devices
        ("device", Case("misspelled device", [], args=["--device", "gpu"])),
        ("device", Case("--device cuda without a GPU", [], args=["--device", "cuda"])),
        # run folders and outputs
        ("folder", Case("--resume of a run another process is writing", [],
                        argv=["run", "--resume", str(files["busy_run"])])),
        ("folder", Case("--resume of a run whose process was killed (stale lock)", [],
                        argv=["run", "--resume", str(files["stale_run"])])),
        ("folder", Case("preview --out naming a file", [],
                        argv=["preview", "--out", str(files["preview_file"])])),
        # files that are hostile or broken (issue 25)
        ("file", Case("--resume with a pickled checkpoint (code inside)", [],
                      argv=["run", "--resume", str(files["pickled_ckpt"])])),
        ("file", Case("--resume with a truncated last.pt (prev.pt intact)", [],
                      argv=["run", "--resume", str(files["truncated_ckpt"])])),
        ("file", Case("--resume with a python tag in the run's config.yaml", [],
                      argv=["run", "--resume", str(files["tagged_config"])])),
        ("file", Case("export of a PLY with 0 vertices", [],
                      argv=["export", str(files["empty_ply"]), "--format", "splat",
                            "--out", str(files["empty_ply"]) + ".splat"])),
        ("file", Case("export of a PLY with 3 NaN Gaussians", [],
                      argv=["export", str(files["nan_ply"]), "--format", "ply",
                            "--out", str(files["nan_ply"]) + ".out.ply"])),
        ("file", Case("animate with a motion of pickled arrays", [],
                      argv=["animate", str(files["run"]), "--motion",
                            str(files["pickled_motion"])])),
        # nothing hangs or eats memory
        ("size", Case("portrait: a FIFO (named pipe)", [face + str(files["fifo"])])),
        ("size", Case("download from a server that never answers", [],
                      argv=["download", "--config", str(files["full_yaml"]), "--no-faces",
                            "--dir", str(files["fifo"].parent / "weights")],
                      env={"HF_ENDPOINT": f"http://127.0.0.1:{ports['stalled']}",
                           "GAUSSIANIP_NETWORK_TIMEOUT": "2"})),
        ("size", Case("a motion of 200,000 frames", [],
                      argv=["animate", str(files["run"]), "--motion", str(files["long_motion"])])),
        ("size", Case("stage 1 of 10^12 steps", ["system.stage1.steps=1000000000000"])),
        ("size", Case("100,000 evaluation views", ["data.n_test_views=100000"])),
        # environment and flags
        ("folder", Case("a run name of 300 characters", ["name=" + "n" * 300])),
        ("flag", Case("--resume with --out", [],
                      argv=["run", "--resume", str(files["stale_run"]), "--out", "elsewhere"])),
        ("flag", Case("view --port on a busy port", [],
                      argv=["view", str(files["run"]), "--port", str(ports["busy"])])),
        ("flag", Case("animate --fps 30 with a 10-fps motion", [],
                      argv=["animate", str(files["run"]), "--motion", str(files["slow_motion"]),
                            "--fps", "30"])),
        ("flag", Case("export --out under a regular file", [],
                      argv=["export", str(files["run"]), "--format", "splat",
                            "--out", str(files["note"] / "avatar.splat")])),
    ]  # fmt: skip


LONG_PROMPT = (
    "a photo of a woman with short brown hair, wearing an orange space suit with a white "
    "collar and a mission patch on the chest, standing on a launch pad at dawn"
)  # 150 characters: 145 tokens of the tiny prior's one-token-per-letter tokenizer


def run_case(case: Case, out: Path) -> tuple[int, str, float]:
    """Exit status, the message the user sees, and seconds."""
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING and "stand-in face analyser" not in (
                message := record.getMessage()
            ):
                warnings.append(message)

    def checks_only(settings, device, save_dir=None):
        """What GaussianIPPipeline does before its first model, then stop."""
        from gaussianip.body import build_body_model
        from gaussianip.faces import build_face_analyser, extract_identity

        build_body_model(**vars(settings.body))
        if settings.prior.preset == "tiny":  # what encoding the prompt would warn about
            from gaussianip.prior.prompt_length import PromptLengthCheck
            from gaussianip.prior.tiny import tiny_tokenizer

            PromptLengthCheck(tiny_tokenizer()).check([settings.prompt])
        analyser = case.analyser or build_face_analyser(
            settings.system.face_analyser, settings.system.face_analyser_root
        )
        for portrait in (settings.system.face_image, settings.system.repel_face_image):
            if portrait:
                extract_identity(portrait, analyser)
        raise ChecksPassed

    handler = Collect()
    logging.getLogger().addHandler(handler)
    stderr = io.StringIO()
    argv = case.argv or ["run", "--config", CONFIG, "--out", str(out), *case.args,
                         *case.overrides]  # fmt: skip

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    start = time.perf_counter()
    try:
        if case.env is not None:  # a separate process: its clients read the variables at import
            env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | case.env
            done = subprocess.run([sys.executable, "-m", "gaussianip", *argv],
                                  capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
            stderr.write(done.stderr)
            code = done.returncode
        else:
            with (
                mock.patch("gaussianip.engine.pipeline.GaussianIPPipeline", checks_only),
                mock.patch.object(gaussianip.photos, "open", refuse, create=True)
                if case.refuse_reads
                else contextlib.nullcontext(),
                contextlib.redirect_stderr(stderr),
            ):
                code = cli.main(argv)
    except ChecksPassed:
        code = 0
    finally:
        logging.getLogger().removeHandler(handler)
    seconds = time.perf_counter() - start
    errors = [line for line in stderr.getvalue().splitlines() if "gaussianip: error:" in line]
    if code != 0:
        message = stderr.getvalue().split("gaussianip: error: ", 1)[-1].strip()
        if not errors:
            message = "(no 'gaussianip: error:' line) " + message
    elif warnings:
        message = "passed, with a warning: " + " ".join(warnings)
    else:
        message = "passed every check (no error)"
    if code == 0 and case.read is not None:
        from gaussianip.photos import read_photo

        image = read_photo(case.read)
        mean = ", ".join(f"{v:.0f}" for v in image.reshape(-1, 3).mean(0))
        message += f"; read as {image.shape[1]}x{image.shape[0]} RGB, mean colour ({mean})"
    if "Traceback" in stderr.getvalue():
        message = "TRACEBACK: " + message
    return code, message, seconds


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=io.StringIO())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder)
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(files["busy_run"])],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        stalled, busy = socket.socket(), socket.socket()
        for server in (stalled, busy):  # stalled: accepts (the kernel's backlog), never answers
            server.bind(("127.0.0.1", 0))
            server.listen(64)
        ports = {"stalled": stalled.getsockname()[1], "busy": busy.getsockname()[1]}
        for i, (kind, case) in enumerate(cases(files, ports), 1):
            out = folder / f"out{i}"
            code, message, seconds = run_case(case, out)
            message = message.replace(f"process {holder.pid} ", "process <pid> ")
            for name, port in ports.items():
                message = message.replace(f"--port {port + 1}", f"--port <{name} port + 1>")
                message = message.replace(str(port), f"<{name} port>")
                shown_port = f"<{name} port>"
                case.argv = [shown_port if a == str(port) else a for a in case.argv or []] or None
            folder_made = "yes" if out.exists() and any(out.iterdir()) else "no"
            shown = " ".join(case.argv or case.overrides + case.args).replace(tmp, "$TMP")
            message = message.replace(tmp, "$TMP").replace("|", "\\|")
            message = " ".join(line.strip() for line in message.splitlines())
            rows.append((i, kind, case.label, shown, code, message, folder_made, seconds))
        holder.kill()
        holder.wait()
        stalled.close()
        busy.close()
        if files["marker"].exists():
            rows.append((0, "file", "a payload ran", "", 1, "TRACEBACK: code in a file ran", "", 0))
    print("| # | kind | what is wrong | input | exit | outcome (message) | run folder | s |")
    print("|---|---|---|---|---|---|---|---|")
    for i, kind, label, shown, code, message, folder_made, seconds in rows:
        print(f"| {i} | {kind} | {label} | `{shown}` | {code} | {message} | {folder_made} "
              f"| {seconds:.2f} |")  # fmt: skip
    refused = sum(r[4] == 2 for r in rows)
    passed = sum(r[4] == 0 for r in rows)
    other = len(rows) - refused - passed
    tracebacks = sum("TRACEBACK" in r[5] for r in rows)
    early = sum(r[4] == 2 and r[6] == "no" for r in rows)
    print()
    print(
        f"{len(rows)} bad inputs tried: {refused} refused with exit status 2 and one of our "
        f"errors ({early} of them before a run folder was made, the others at face "
        f"detection, still before any diffusion model), {passed} passed the checks (with a "
        f"warning where one is due), {other} other exit statuses, {tracebacks} tracebacks; "
        f"slowest case {max(r[7] for r in rows):.2f} s."
    )
    return 0 if other == 0 and tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
