"""Bad inputs fail fast, before any model is built, with one of our errors.

A table of known mistakes (each message names the key and the value), property-based tests
(hypothesis) over config overrides and portrait files showing that every failure is a
``GaussianIPError``, never another exception, and one command-line run.
"""

import io
import math
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from gaussianip.engine.config import load_run_config, parse_run_config
from gaussianip.errors import AssetError, BodyModelError, ConfigError, GaussianIPError
from gaussianip.faces import DetectedFace, FaceError, StandInFaceAnalyser, extract_identity

TINY = "custom/gaussianip/configs/gaussianip-tiny.yaml"
PORTRAIT = "load/portraits/eileen_collins_nasa.png"
PROPERTY = settings(
    max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", 50)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _parse(*overrides: str):
    return parse_run_config(load_run_config(TINY, list(overrides)))


def test_the_tiny_config_itself_parses():
    settings_ = _parse()
    assert settings_.stage1.steps == 60 and settings_.guidance.resolution == 64


# --------------------------------------------------------------------------------------
# (a) A table of bad values: each names its key and the value
# --------------------------------------------------------------------------------------

BAD_OVERRIDES = [
    # override, text the message must contain (besides the key)
    ("system.stage1.steps=0", "got 0"),
    ("system.stage1.steps=-3", "got -3"),
    ("system.reconstruction.steps=0", "got 0"),
    ("system.reconstruction.batch_size=0", "got 0"),
    ("system.reconstruction.patch_size=-1", "got -1"),
    ("system.guidance.resolution=100", "got 100"),
    ("system.guidance.resolution=0", "got 0"),
    ("data.height=100", "got 100"),
    ("data.width=7", "got 7"),
    ("data.ring_height=72", "72"),
    ("data.ring_size=12", "got 12"),
    ("data.batch_size=0", "got 0"),
    ("data.head_prob=1.5", "got 1.5"),
    ("data.back_prob=-0.1", "got -0.1"),
    ("system.vcr.lambda_self=2", "got 2.0"),
    ("system.vcr.lambda_self=-0.5", "got -0.5"),
    ("system.vcr.chunk_size=0", "got 0"),
    ("system.vcr.refine_steps=0", "got 0"),
    ("system.vcr.guidance_scale=-2", "got -2.0"),
    ("system.guidance.guidance_scale=-1", "got -1.0"),
    ("system.guidance.guidance_scale=nan", "got nan"),
    ("system.guidance.guidance_rescale=3", "got 3.0"),
    ("system.guidance.repel_threshold=5000", "got 5000"),
    ("system.guidance.mode=vsd", "'vsd'"),
    ("system.guidance.timestep_schedule=adaptiv", "Did you mean 'adaptive'"),
    ("system.guidance.timestep_schedule_cfg.total_steps=0", "got 0"),
    ("system.stage1.lambda_sds=-1", "got -1.0"),
    ("system.stage1.max_scale=inf", "got inf"),
    ("system.stage1.background=[2,0,0]", "[2.0, 0.0, 0.0]"),
    ("system.reconstruction.lambda_lpips=-15", "got -15.0"),
    ("system.reconstruction.lpips_net=resnet", "'resnet'"),
    ("system.geometry.gaussians.init_num_points=0", "got 0"),
    ("system.geometry.gaussians.init_opacity=1.5", "got 1.5"),
    ("system.geometry.densify.refine_every=0", "got 0"),
    ("system.geometry.densify.refine_every=often", "'often'"),
    ("system.prior.id_scale=-0.5", "got -0.5"),
    ("system.prior.compile_networks=[vae,text]", "'text'"),
    ("data.eval_fovy=200", "got 200.0"),
    ("seed=abc", "'abc'"),
]


@pytest.mark.parametrize(("override", "value_text"), BAD_OVERRIDES)
def test_each_bad_value_names_its_key_and_value(override, value_text):
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError) as err:
        _parse(override)
    message = str(err.value)
    assert key in message and value_text in message, message


@pytest.mark.parametrize(
    ("override", "wrong", "suggestion"),
    [
        ("system.stage1.stepz=3", "system.stage1.stepz", "Did you mean 'steps'"),
        ("system.guidance.resolutoin=64", "system.guidance.resolutoin",
         "Did you mean 'resolution'"),
        ("data.hieght=64", "data.hieght", "Did you mean 'height'"),
        ("sytem.stage1.steps=3", "'sytem'", "Did you mean 'system'"),  # at the top level
        ("system.body.nmae=smplx", "system.body.nmae", "Did you mean 'name'"),
    ],
)  # fmt: skip
def test_unknown_keys_suggest_the_closest(override, wrong, suggestion):
    with pytest.raises(ConfigError, match=suggestion) as err:
        _parse(override)
    assert wrong in str(err.value)


@pytest.mark.parametrize("prompt", ["", "   ", "\t"])
def test_an_empty_prompt_is_refused(prompt):
    config = load_run_config(TINY, [])
    config.system.prompt_processor.prompt = prompt
    with pytest.raises(ConfigError, match="prompt is empty.*describe the person"):
        parse_run_config(config)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("system.stage1.steps=[", "system.stage1.steps"),  # not YAML
        ("system.geometry=[1]", "system.geometry"),  # a list for a section
        ("system.prompt_processor.prompt=${nowhere}", "nowhere"),  # a dangling reference
        ("data=5", "'data' must be a section"),
        ("system.stage1=3", "stage1"),  # a number for a section
    ],
)
def test_malformed_overrides_are_config_errors(override, fragment):
    with pytest.raises(ConfigError) as err:
        _parse(override)
    assert fragment in str(err.value)


def test_the_config_file_itself(tmp_path):
    with pytest.raises(AssetError, match="Config file not found: 'nope.yaml'"):
        load_run_config("nope.yaml", [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("system: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(broken, [])


def test_body_model_files_missing_or_malformed(tmp_path):
    with pytest.raises(BodyModelError, match="Did you mean 'smplx'"):
        _parse("system.body.name=smpl-x")
    with pytest.raises(BodyModelError, match="SMPLX_NEUTRAL.npz not found.*smpl-x.is.tue.mpg"):
        _parse("system.body.name=smplx", f"system.body.model_path={tmp_path}")
    text = tmp_path / "SMPLX_NEUTRAL.npz"
    text.write_text("<html>login required</html>")  # a failed download
    with pytest.raises(BodyModelError, match="not an SMPL-X .npz file"):
        _parse("system.body.name=smplx", f"system.body.model_path={text}")
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((10475, 3)))
    with pytest.raises(BodyModelError, match="missing 'f'"):
        _parse("system.body.name=smplx", f"system.body.model_path={partial}")
    with pytest.raises(BodyModelError, match="neutral, male, female"):
        _parse("system.body.name=smplx", f"system.body.model_path={partial}",
               "system.body.gender=other")  # fmt: skip
    bad_template = tmp_path / "body.npz"
    np.savez(bad_template, vertices=np.zeros((3, 3)))
    with pytest.raises(BodyModelError, match="lacks faces"):
        _parse(f"system.body.model_path={bad_template}")


def test_portrait_checks_in_the_config(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(FaceError, match=r"system.face_image.*only 40x30 pixels"):
        _parse(f"system.face_image={small}")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(AssetError, match=r"system.repel_face_image.*is a folder"):
        _parse(f"system.repel_face_image={folder}")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(AssetError, match="empty.jpg' is empty"):
        _parse(f"system.face_image={empty}")
    assert _parse("system.repel_face_image=null").system.repel_face_image is None


def test_an_unreadable_portrait(tmp_path, monkeypatch):
    locked = tmp_path / "locked.png"
    Image.new("RGB", (128, 128)).save(locked)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the open fail as it would for a user
        import gaussianip.photos

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(gaussianip.photos, "open", refuse, raising=False)
    with pytest.raises(AssetError, match="locked.png' cannot be read .*permissions"):
        _parse(f"system.face_image={locked}")


class _Faces:
    """A face analyser that finds the given boxes."""

    def __init__(self, *boxes):
        self.boxes = boxes

    def __call__(self, image):
        faces = []
        for i, (x0, y0, x1, y1) in enumerate(self.boxes):
            landmarks = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1], [x0, y1]], float)
            embedding = np.zeros(512, np.float32)
            embedding[i] = 1.0
            faces.append(DetectedFace(np.array([x0, y0, x1, y1], float), landmarks, embedding, 1))
        return faces


def test_face_detection_outcomes(caplog):
    with pytest.raises(FaceError, match=f"No face found in the portrait '{PORTRAIT}'"):
        extract_identity(PORTRAIT, _Faces())
    with pytest.raises(FaceError, match="only 30x30 pixels; at least 48"):
        extract_identity(PORTRAIT, _Faces((0, 0, 30, 30)))
    identity = extract_identity(PORTRAIT, _Faces((0, 0, 60, 60), (10, 10, 210, 230)))
    assert identity.num_faces == 2 and identity.embedding[1] == 1.0
    assert "2 faces; using the largest (box 10, 10, 210, 230)" in caplog.text
    blank = np.zeros(512, np.float32)
    with pytest.raises(FaceError, match="gives no identity"):
        extract_identity(
            PORTRAIT,
            lambda image: [DetectedFace(np.array([0, 0, 99, 99.0]), np.zeros((5, 2)), blank, 1.0)],
        )


# --------------------------------------------------------------------------------------
# (b) Property: any override gives a parsed config or one of our errors
# --------------------------------------------------------------------------------------


def _leaf_keys(node, prefix=""):
    """Dotted keys of the scalar values under ``node``."""
    keys = []
    for key in node:
        value = node[key]
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            keys += _leaf_keys(value, path + ".")
        elif not OmegaConf.is_list(value):
            keys.append(path)
    return keys


_TINY = load_run_config(TINY, [])
EXTRA_KEYS = [  # not in the tiny config, or not under data / system
    "seed", "name", "exp_root_dir", "system.body.model_path", "system.face_analyser_root",
    "system.guidance.guidance_scale", "system.guidance.mode", "system.stage1.lambda_opacity",
    "system.vcr.lambda_self", "data.head_prob", "data.back_prob",
    "system.guidance.repel_threshold",
]  # fmt: skip
CONFIG_KEYS = [
    key for section in ("data", "system") for key in _leaf_keys(_TINY[section], section + ".")
] + EXTRA_KEYS
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, -1, 1, 7, 8, 12, 16, 2**31, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5, 1.5]),
)
VALUES = st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=12))


def _as_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _outcome(build) -> str:
    try:
        build()
    except GaussianIPError as err:
        assert str(err).strip(), "our errors always say something"
        event(type(err).__name__)
        return type(err).__name__
    event("parsed")
    return "ok"


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), VALUES), min_size=1, max_size=3))
def test_any_command_line_override_parses_or_is_our_error(pairs):
    overrides = [f"{key}={_as_text(value)}" for key, value in pairs]
    _outcome(lambda: _parse(*overrides))  # anything but GaussianIPError propagates: fails


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), VALUES), min_size=1, max_size=3))
def test_any_typed_value_parses_or_is_our_error(pairs):
    """The same through a YAML-like mapping (threestudio, or a config file), values typed."""

    def build():
        config = load_run_config(TINY, [])
        for key, value in pairs:
            OmegaConf.update(config, key, value, force_add=True)
        parse_run_config(config)

    _outcome(build)


@PROPERTY
@given(st.text(max_size=40))
def test_any_override_text_parses_or_is_our_error(text):
    """Arbitrary command-line words, '=' or not, keys or not."""
    _outcome(lambda: _parse(text))
    _outcome(lambda: _parse(f"system.prompt_processor.prompt={text}"))


# --------------------------------------------------------------------------------------
# (c) Property: any portrait file gives an identity or one of our errors naming the path
# --------------------------------------------------------------------------------------

STAND_IN = StandInFaceAnalyser()


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(out, format="JPEG")
    return out.getvalue()


@st.composite
def images(draw) -> np.ndarray:
    height, width = draw(st.integers(1, 130)), draw(st.integers(1, 130))
    channels = draw(st.sampled_from([None, 3, 4]))  # grayscale, RGB, RGBA
    shape = (height, width) if channels is None else (height, width, channels)
    kind = draw(st.sampled_from(["noise", "constant"]))
    if kind == "constant":
        return np.full(shape, draw(st.integers(0, 255)), np.uint8)
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
VALID = _png(np.zeros((120, 120, 3), np.uint8))
FILE_CONTENTS = st.one_of(
    st.binary(max_size=300),  # random bytes, the empty file included
    st.binary(max_size=200).map(lambda b: PNG_MAGIC + b),  # a PNG header, then garbage
    st.binary(max_size=200).map(lambda b: JPEG_MAGIC + b),
    st.integers(1, len(VALID) - 1).map(lambda n: VALID[:n]),  # a truncated PNG
    images().map(_png),
    images().map(lambda a: _jpeg(a if a.ndim == 2 or a.shape[2] == 3 else a[..., :3])),
)


def _check_portrait_outcomes(path) -> list[str]:
    """Outcomes of the run's two portrait checks: the config's (no face model) and the
    stand-in analyser's face detection, as the tiny config's pipeline runs it."""
    outcomes = []
    checks = (
        lambda: _parse(f"system.face_image={path}", "system.repel_face_image=null"),
        lambda: extract_identity(path, STAND_IN),
    )
    for check in checks:
        try:
            check()
            outcomes.append("ok")
        except GaussianIPError as err:
            assert str(path) in str(err), err  # the message names the file
            outcomes.append(type(err).__name__)
    return outcomes


@PROPERTY
@given(FILE_CONTENTS, st.sampled_from(["portrait.png", "portrait.jpg", "photo"]))
def test_any_portrait_file_gives_an_identity_or_our_error(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    outcomes = _check_portrait_outcomes(path)
    event(" / ".join(outcomes))
    if content == b"":
        assert outcomes == ["AssetError", "AssetError"]


@PROPERTY
@given(images())
def test_any_small_or_odd_image_is_used_or_refused_clearly(tmp_path, array):
    path = tmp_path / "portrait.png"
    path.write_bytes(_png(array))
    outcomes = _check_portrait_outcomes(path)
    event(" / ".join(outcomes))
    height, width = array.shape[:2]
    if min(height, width) < 48:  # too small for any face
        assert outcomes == ["FaceError", "FaceError"]
    else:
        assert outcomes[0] == "ok"


def test_portrait_that_is_a_folder_or_missing_or_a_zip(tmp_path):
    assert _check_portrait_outcomes(tmp_path) == ["AssetError", "AssetError"]
    assert _check_portrait_outcomes(tmp_path / "missing.png") == ["AssetError", "AssetError"]
    archive = tmp_path / "photo.png"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photo.png", VALID)
    assert _check_portrait_outcomes(archive) == ["AssetError", "AssetError"]


# --------------------------------------------------------------------------------------
# (d) The command line: exit status 2, one message, no traceback, in seconds
# --------------------------------------------------------------------------------------


def test_cli_bad_value_exits_2_without_traceback(tmp_path):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gaussianip", "run", "--config", "gaussianip-tiny.yaml",
         "--out", str(tmp_path / "out"), "system.stage1.steps=0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.perf_counter() - start < 60
    assert done.returncode == 2, done.stderr
    assert "gaussianip: error: system.stage1.steps must be >= 1, got 0" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()  # nothing was created
