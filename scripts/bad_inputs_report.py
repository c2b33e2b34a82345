"""Feed a list of bad inputs to ``gaussianip run`` and tabulate what each gave.

Every case goes through the command line's own entry point (``gaussianip.cli.main``,
in-process) with the tiny config, so the outcome is what a user sees: the exit status and
the ``gaussianip: error: ...`` line. No model is loaded: the pipeline is replaced by a
stand-in that does only what ``GaussianIPPipeline`` does before its first model (body
model, face analyser, identity of each portrait) and then stops; a case that got that far
passed every check.

    python3 scripts/bad_inputs_report.py            # prints a markdown table and a count

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
    return files


def cases(files: dict[str, Path]) -> list[tuple[str, Case]]:
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
    ]  # fmt: skip


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
    argv = ["run", "--config", CONFIG, "--out", str(out), *case.args, *case.overrides]

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    start = time.perf_counter()
    try:
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
    if "Traceback" in stderr.getvalue():
        message = "TRACEBACK: " + message
    return code, message, seconds


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=io.StringIO())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder)
        for i, (kind, case) in enumerate(cases(files), 1):
            out = folder / f"out{i}"
            code, message, seconds = run_case(case, out)
            folder_made = "yes" if out.exists() and any(out.iterdir()) else "no"
            shown = " ".join(case.overrides + case.args).replace(tmp, "$TMP")
            message = message.replace(tmp, "$TMP").replace("|", "\\|")
            message = " ".join(line.strip() for line in message.splitlines())
            rows.append((i, kind, case.label, shown, code, message, folder_made, seconds))
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
