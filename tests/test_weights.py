"""Model weights: what a config needs, the offline presence check, and the download command.

No network: the Hugging Face cache is a temporary folder (HF_HUB_CACHE) and every download
function is replaced by a fake.
"""

import dataclasses
import sys
import time
import types
from pathlib import Path

import huggingface_hub
import pytest

from gaussianip import cli
from gaussianip.errors import AssetError, ConfigError
from gaussianip.prior.human_prior import PriorConfig
from gaussianip.prior.weights import (
    check_weights,
    download_weights,
    hub_cache_dir,
    missing_weights,
    required_weights,
)

CFG = PriorConfig()
HUB_IDS = {
    "SG161222/Realistic_Vision_V4.0_noVAE",
    "stabilityai/sd-vae-ft-mse",
    "lllyasviel/control_v11p_sd15_openpose",
    "h94/IP-Adapter-FaceID",
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
}


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """An empty Hugging Face cache and insightface root, online settings."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # insightface's default root
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no LPIPS backbone there
    return tmp_path / "hf-cache"


@pytest.fixture(autouse=True)
def vgg_downloads(monkeypatch, tmp_path):
    """torchvision's weight download, recorded instead of run (it writes a stand-in file);
    torch's hub folder in tmp_path."""
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls: list[str] = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        Path(dst).write_bytes(b"stand-in weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return calls


def _cache(cache: Path, repo_id: str, *files: str) -> None:
    """A fake cache entry, laid out as huggingface_hub writes it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("abc123")
    for name in files:
        path = repo / "snapshots" / "abc123" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def _touch(folder: Path, *files: str) -> Path:
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    return folder


def _face_pack(root: Path) -> Path:
    return _touch(root, "models/buffalo_l/det_10g.onnx", "models/buffalo_l/w600k_r50.onnx")


def _by_role(sources):
    return {s.role: s for s in sources}


# ---------------------------------------------------------------- what is needed
def test_default_config_needs_all_six_sources():
    sources = required_weights(CFG)
    assert {s.repo_id for s in sources} == HUB_IDS | {"buffalo_l"}
    assert len(sources) == 6
    roles = _by_role(sources)
    base = roles["base model"].allow_patterns
    assert {
        "model_index.json",
        "unet/config.json",
        "text_encoder/config.json",
        "tokenizer/*",
    } <= set(base)
    assert "unet/diffusion_pytorch_model.safetensors" in base
    assert "unet/diffusion_pytorch_model.bin" in base
    assert not any(p.startswith("vae/") for p in base)  # the separate VAE replaces it
    assert all("/" in p or p == "model_index.json" for p in base)  # no root checkpoints
    assert roles["IP-Adapter"].allow_patterns == ("ip-adapter-faceid-plusv2_sd15.bin",)
    encoder = roles["CLIP image encoder"].allow_patterns
    assert set(encoder) == {"config.json", "model.safetensors", "pytorch_model.bin"}
    assert roles["insightface face pack"].kind == "insightface"


def test_base_model_vae_only_without_a_separate_vae():
    sources = required_weights(dataclasses.replace(CFG, vae=None))
    roles = _by_role(sources)
    assert "VAE" not in roles
    assert "vae/config.json" in roles["base model"].allow_patterns
    assert ("vae/config.json",) in roles["base model"].needs


def test_parts_set_to_none_are_skipped():
    cfg = dataclasses.replace(CFG, controlnet=None, ip_adapter=None)
    ids = {s.repo_id for s in required_weights(cfg, face_analyser="stand-in")}
    assert ids == {CFG.base_model, CFG.vae}


@pytest.mark.parametrize("preset", ["tiny", "random"])
def test_tiny_and_random_presets_need_no_model(preset):
    cfg = dataclasses.replace(CFG, preset=preset)
    assert required_weights(cfg, face_analyser="stand-in") == []
    assert missing_weights(cfg, face_analyser="stand-in") == []
    check_weights(cfg, face_analyser="stand-in")
    # The face analyser is built whatever the prior: a real pack is still needed.
    assert [s.repo_id for s in required_weights(cfg)] == ["buffalo_l"]


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="huge"):
        required_weights(dataclasses.replace(CFG, preset="huge"))


# ---------------------------------------------------------------- what is there
def test_local_folders_count_only_with_their_key_files(tmp_path):
    vae = _touch(tmp_path / "vae", "config.json")
    base = _touch(tmp_path / "base", "unet/config.json", "unet/diffusion_pytorch_model.bin")
    ip = _touch(tmp_path / "ip", "other.bin")
    cfg = dataclasses.replace(CFG, vae=str(vae), base_model=str(base), ip_adapter=str(ip))
    missing = {s.repo_id for s in missing_weights(cfg, face_analyser=None)}
    assert {str(vae), str(base), str(ip)} <= missing
    with pytest.raises(AssetError, match="lacks diffusion_pytorch_model.safetensors or"):
        check_weights(cfg, face_analyser=None)

    _touch(vae, "diffusion_pytorch_model.safetensors")
    _touch(base, "text_encoder/config.json", "text_encoder/model.safetensors")
    _touch(base, "tokenizer/vocab.json", "tokenizer/merges.txt")
    _touch(ip, CFG.ip_adapter_file)
    missing = {s.repo_id for s in missing_weights(cfg, face_analyser=None)}
    assert missing == {CFG.controlnet, CFG.image_encoder}


def test_ip_adapter_given_as_a_file_is_present(tmp_path):
    file = _touch(tmp_path, "adapter.bin") / "adapter.bin"
    cfg = dataclasses.replace(CFG, ip_adapter=str(file))
    assert str(file) not in {s.repo_id for s in missing_weights(cfg)}


def test_a_cache_entry_counts_as_present(hf_env):
    assert hub_cache_dir() == hf_env
    _cache(hf_env, CFG.vae, "config.json", "diffusion_pytorch_model.safetensors")
    _cache(hf_env, CFG.ip_adapter, CFG.ip_adapter_file)
    _cache(hf_env, CFG.controlnet, "config.json")  # weights missing: incomplete
    missing = {s.repo_id for s in missing_weights(CFG, face_analyser=None)}
    assert missing == {CFG.base_model, CFG.controlnet, CFG.image_encoder}
    with pytest.raises(AssetError) as info:
        check_weights(CFG, face_analyser=None)
    assert "incomplete in the Hugging Face cache" in str(info.value)


def test_everything_present_passes(hf_env, tmp_path):
    base = ["unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    base += ["text_encoder/config.json", "text_encoder/pytorch_model.bin"]
    _cache(hf_env, CFG.base_model, *base, "tokenizer/vocab.json", "tokenizer/merges.txt")
    for repo in (CFG.vae, CFG.controlnet):
        _cache(hf_env, repo, "config.json", "diffusion_pytorch_model.bin")
    _cache(hf_env, CFG.ip_adapter, CFG.ip_adapter_file)
    _cache(hf_env, CFG.image_encoder, "config.json", "model.safetensors")
    root = _face_pack(tmp_path / "faces")
    assert missing_weights(CFG, face_analyser_root=root) == []
    check_weights(CFG, face_analyser_root=str(root))
    # The default root is ~/.insightface.
    assert [s.repo_id for s in missing_weights(CFG)] == ["buffalo_l"]
    _face_pack(Path.home() / ".insightface")
    check_weights(CFG)


def test_check_names_every_missing_model_and_the_fix_fast():
    start = time.perf_counter()
    with pytest.raises(AssetError) as info:
        check_weights(CFG)
    assert time.perf_counter() - start < 0.5
    message = str(info.value)
    for repo_id in HUB_IDS | {"buffalo_l"}:
        assert f"'{repo_id}'" in message
    assert "6 model(s) missing" in message
    assert "`python -m gaussianip download`" in message
    assert "python -m gaussianip download --dir FOLDER" in message
    assert "system.prior.*" in message
    assert "HF_HUB_OFFLINE is not set" in message


def test_check_mentions_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError, match="HF_HUB_OFFLINE is set"):
        check_weights(CFG, face_analyser=None)
    with pytest.raises(AssetError, match="--config my.yaml"):
        check_weights(CFG, face_analyser=None, config_path="my.yaml")


# ---------------------------------------------------------------- downloading
class FakeHub:
    """Records snapshot_download calls; every repository has both weight formats except
    the base model (.bin only)."""

    def __init__(self, monkeypatch, error: Exception | None = None):
        self.calls: list[dict] = []
        self.error = error
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(huggingface_hub, "list_repo_files", self.list_repo_files)

    def list_repo_files(self, repo_id):
        if self.error is not None:
            raise self.error
        if repo_id == CFG.base_model:
            return ["unet/config.json", "unet/diffusion_pytorch_model.bin", "v4.safetensors"]
        return ["config.json", "model.safetensors", "pytorch_model.bin",
                "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"]  # fmt: skip

    def snapshot_download(self, repo_id, **kwargs):
        self.calls.append(dict(kwargs, repo_id=repo_id))
        return str(kwargs.get("local_dir") or Path(kwargs["cache_dir"]) / repo_id)


@pytest.fixture
def fake_insightface(monkeypatch):
    """insightface's zoo download, writing a pack as buffalo_l.zip unpacks."""
    calls = []

    def download(sub_dir, name, force=False, root="~/.insightface"):
        calls.append((sub_dir, name, force, root))
        _touch(Path(root) / sub_dir / name, "det_10g.onnx", "w600k_r50.onnx")
        return str(Path(root) / sub_dir / name)

    module = types.ModuleType("insightface.utils.storage")
    module.download = download
    monkeypatch.setitem(sys.modules, "insightface.utils.storage", module)
    return calls


def test_download_into_the_cache(monkeypatch, hf_env, fake_insightface, tmp_path):
    hub = FakeHub(monkeypatch)
    root = tmp_path / "faces"
    paths = download_weights(CFG, face_analyser_root=root)
    assert [c["repo_id"] for c in hub.calls] == [s.repo_id for s in required_weights(CFG)][:5]
    assert all(c["cache_dir"] == hf_env and "local_dir" not in c for c in hub.calls)
    calls = {c["repo_id"]: c["allow_patterns"] for c in hub.calls}
    assert calls[CFG.ip_adapter] == [CFG.ip_adapter_file]
    assert "unet/diffusion_pytorch_model.bin" in calls[CFG.base_model]  # no safetensors twin
    assert calls[CFG.vae] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert calls[CFG.image_encoder] == ["config.json", "model.safetensors"]
    assert fake_insightface == [("models", "buffalo_l", True, str(root))]
    assert paths[-1] == root / "models" / "buffalo_l"
    assert len(paths) == 6


def test_download_into_a_folder_skips_local_models(monkeypatch, tmp_path):
    hub = FakeHub(monkeypatch)
    vae = _touch(tmp_path / "my-vae", "config.json")
    cfg = dataclasses.replace(CFG, vae=str(vae))
    paths = download_weights(cfg, tmp_path / "weights", include_faces=False)
    assert CFG.vae not in {c["repo_id"] for c in hub.calls} and len(hub.calls) == 4
    local = {c["repo_id"]: c["local_dir"] for c in hub.calls}
    assert local[CFG.base_model] == tmp_path / "weights" / "Realistic_Vision_V4.0_noVAE"
    assert local[CFG.ip_adapter] == tmp_path / "weights" / "IP-Adapter-FaceID"
    assert paths[1] == vae and len(paths) == 5


def test_download_flattens_a_nested_face_pack(monkeypatch, tmp_path):
    def download(sub_dir, name, force=False, root="~/.insightface"):
        _touch(Path(root) / sub_dir / name / name, "det_10g.onnx")

    module = types.ModuleType("insightface.utils.storage")
    module.download = download
    monkeypatch.setitem(sys.modules, "insightface.utils.storage", module)
    cfg = dataclasses.replace(CFG, preset="tiny")
    (pack,) = download_weights(cfg, face_analyser_root=tmp_path)
    assert (pack / "det_10g.onnx").is_file()


def test_download_network_error_names_the_model(monkeypatch):
    FakeHub(monkeypatch, error=ConnectionError("no route to host"))
    with pytest.raises(AssetError, match="base model 'SG161222.*no route to host"):
        download_weights(CFG, include_faces=False)


def test_download_refuses_with_hf_hub_offline(monkeypatch):
    hub = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError, match="HF_HUB_OFFLINE is set"):
        download_weights(CFG, include_faces=False)
    assert hub.calls == []


# ---------------------------------------------------------------- the command
def test_cli_download_into_a_folder(monkeypatch, capsys, fake_insightface, tmp_path):
    hub = FakeHub(monkeypatch)
    assert cli.main(["download", "--dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert len(hub.calls) == 5 and len(fake_insightface) == 1
    folder = (tmp_path / "w").resolve()
    assert f"    base_model: {folder / 'Realistic_Vision_V4.0_noVAE'}" in out
    assert f"    image_encoder: {folder / 'CLIP-ViT-H-14-laion2B-s32B-b79K'}" in out
    assert f"  face_analyser_root: {folder / 'insightface'}" in out


def test_cli_download_into_the_cache(monkeypatch, capsys, hf_env):
    hub = FakeHub(monkeypatch)
    assert cli.main(["download", "--no-faces", "--config", "gaussianip.yaml"]) == 0
    out = capsys.readouterr().out
    assert {c["repo_id"] for c in hub.calls} == HUB_IDS
    assert f"VAE 'stabilityai/sd-vae-ft-mse': {hf_env / CFG.vae}" in out
    assert "face" not in out


def test_cli_download_tiny_config_needs_nothing(monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    assert cli.main(["download", "--config", "gaussianip-tiny.yaml"]) == 0
    assert "nothing to download" in capsys.readouterr().out and hub.calls == []


def test_cli_download_network_error_exits_2(monkeypatch, capsys):
    FakeHub(monkeypatch, error=OSError("offline"))
    assert cli.main(["download", "--no-faces"]) == 2
    err = capsys.readouterr().err
    assert "gaussianip: error: Could not download the base model" in err
    assert "OSError: offline" in err and "Traceback" not in err


def test_cli_download_fetches_the_lpips_backbone(monkeypatch, capsys, vgg_downloads):
    FakeHub(monkeypatch)
    assert cli.main(["download", "--no-faces"]) == 0
    assert vgg_downloads == ["https://download.pytorch.org/models/vgg16-397923af.pth"]
    assert "LPIPS VGG16 backbone" in capsys.readouterr().out


def test_cli_download_reports_a_failed_backbone_download(monkeypatch, capsys):
    import torch.hub

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert cli.main(["download", "--no-faces"]) == 2
    assert "LPIPS VGG16 backbone: Name or service not known" in capsys.readouterr().err


def test_cli_download_dir_takes_the_lpips_backbone_too(monkeypatch, capsys, hf_env, tmp_path,
                                                       vgg_downloads):  # fmt: skip
    """With --dir everything goes there, the LPIPS backbone included: nothing lands in (or
    creates) torch's hub cache, and a config with the printed key finds it."""
    import lpips
    import torch.hub
    import yaml

    from gaussianip.engine.reconstruction import (
        ReconstructionConfig,
        build_lpips,
        check_lpips_weights,
    )

    FakeHub(monkeypatch)
    assert cli.main(["download", "--no-faces", "--dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    backbone = (tmp_path / "w").resolve() / "torch_hub" / "checkpoints" / "vgg16-397923af.pth"
    assert backbone.is_file() and len(vgg_downloads) == 1
    assert not (tmp_path / "torch").exists()  # TORCH_HOME untouched, not even a folder
    overrides = yaml.safe_load(out.split("(YAML, or the same keys as key=value):\n", 1)[1])
    folder = overrides["system"]["reconstruction"]["lpips_weights_dir"]
    assert folder == str(backbone.parent.parent)
    cfg = ReconstructionConfig(lpips_weights_dir=folder)
    check_lpips_weights(cfg)  # found: no error
    with pytest.raises(AssetError, match="vgg16-397923af.pth"):
        check_lpips_weights(ReconstructionConfig())  # not in the (empty) hub cache
    seen = []
    monkeypatch.setattr(lpips, "LPIPS", lambda **kw: seen.append(torch.hub.get_dir()) or
                        torch.nn.Identity())  # fmt: skip
    build_lpips(cfg, "cpu")
    assert seen == [folder]  # torchvision looked there while LPIPS was built
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")  # and the default is back
