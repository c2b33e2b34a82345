"""IP-Adapter-FaceID-PlusV2: key layout, strict loading, and what each part does."""

import pickle

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from gaussianip.errors import AssetError
from gaussianip.prior import (
    FaceIDAdapter,
    FaceIDLoRAIPAttnProcessor,
    FaceIDPlusProjection,
    FaceProjectionConfig,
    sd15_unet_config,
    tiny_unet_config,
)

TINY_PROJ = FaceProjectionConfig(
    cross_attention_dim=32, id_embeddings_dim=16, clip_embeddings_dim=24, depth=1, dim_head=16
)


def _unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**tiny_unet_config()).eval()


def _inputs(text_tokens: int = 5, id_tokens: int = 4):
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 8, 8, generator=g)
    context = torch.randn(2, text_tokens + id_tokens, 32, generator=g)
    return latents, torch.tensor([10, 500]), context


def _randomise_lora(adapter: FaceIDAdapter) -> None:
    with torch.no_grad():
        for name, p in adapter.ip_adapter.named_parameters():
            if "up.weight" in name:
                p.normal_(std=0.05)


def _save(adapter: FaceIDAdapter, path):
    torch.save(
        {
            "image_proj": adapter.image_proj.state_dict(),
            "ip_adapter": adapter.ip_adapter.state_dict(),
        },
        path,
    )
    return path


def test_checkpoint_in_published_layout_loads_strictly(tmp_path):
    source = FaceIDAdapter(_unet(), TINY_PROJ, lora_rank=4)
    _randomise_lora(source)
    path = _save(source, tmp_path / "ip-adapter-faceid-plusv2_sd15.bin")
    for where in (str(path), str(tmp_path)):  # a file, or a folder holding it
        loaded = FaceIDAdapter.from_pretrained(
            where, _unet(), projection_cfg=TINY_PROJ, lora_rank=4
        )
        for (k1, v1), (k2, v2) in zip(
            source.state_dict().items(), loaded.state_dict().items(), strict=True
        ):
            assert k1 == k2 and torch.equal(v1, v2)


def test_missing_or_unexpected_keys_are_named(tmp_path):
    source = FaceIDAdapter(_unet(), TINY_PROJ, lora_rank=4)
    state = {
        "image_proj": source.image_proj.state_dict(),
        "ip_adapter": dict(source.ip_adapter.state_dict()),
    }
    state["ip_adapter"].pop("1.to_k_ip.weight")
    torch.save(state, tmp_path / "a.bin")
    with pytest.raises(AssetError, match="1.to_k_ip.weight"):
        FaceIDAdapter.from_pretrained(
            str(tmp_path / "a.bin"), _unet(), projection_cfg=TINY_PROJ, lora_rank=4
        )
    state["ip_adapter"]["1.to_k_ip.weight"] = torch.zeros(1)
    state["image_proj"] = dict(state["image_proj"], extra=torch.zeros(1))
    torch.save(state, tmp_path / "b.bin")
    with pytest.raises(AssetError, match="'extra'"):
        FaceIDAdapter.from_pretrained(
            str(tmp_path / "b.bin"), _unet(), projection_cfg=TINY_PROJ, lora_rank=4
        )


def test_wrong_shapes_are_an_asset_error(tmp_path):
    path = _save(FaceIDAdapter(_unet(), TINY_PROJ, lora_rank=4), tmp_path / "r4.bin")
    with pytest.raises(AssetError, match="LoRA rank"):
        FaceIDAdapter.from_pretrained(str(path), _unet(), projection_cfg=TINY_PROJ, lora_rank=8)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump({"image_proj": _Evil(), "ip_adapter": {}}, f)
    with pytest.raises(AssetError, match="other than tensors, numbers and lists.*could run code"):
        FaceIDAdapter.from_pretrained(str(path), _unet(), projection_cfg=TINY_PROJ)


def test_missing_local_file_says_what_to_do(tmp_path):
    with pytest.raises(AssetError, match="No 'ip-adapter-faceid-plusv2_sd15.bin'"):
        FaceIDAdapter.from_pretrained(str(tmp_path), _unet(), projection_cfg=TINY_PROJ)


def test_zero_lora_equals_plain_unet_and_lora_changes_it():
    latents, t, context = _inputs()
    plain = _unet()
    plain.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad():
        reference = plain(latents, t, context[:, :5]).sample
        unet = _unet()
        adapter = FaceIDAdapter(unet, TINY_PROJ, lora_rank=4)
        adapter.set_scale(0.0)  # ID tokens off
        same = unet(latents, t, context).sample
        _randomise_lora(adapter)
        changed = unet(latents, t, context).sample
    assert torch.allclose(same, reference, atol=1e-5)
    assert (changed - reference).abs().max() > 1e-3


def test_id_tokens_change_the_output_in_proportion_to_scale():
    latents, t, context = _inputs()
    unet = _unet()
    adapter = FaceIDAdapter(unet, TINY_PROJ, lora_rank=4)
    with torch.no_grad():
        adapter.set_scale(0.0)
        text_only = unet(latents, t, context).sample
        other_ids = context.clone()
        other_ids[:, 5:] += 1.0
        assert torch.equal(unet(latents, t, other_ids).sample, text_only)  # ignored at 0
        adapter.set_scale(0.5)
        with_ids = unet(latents, t, context).sample
    assert (with_ids - text_only).abs().max() > 1e-4
    procs = [p for p in adapter.ip_adapter if isinstance(p, FaceIDLoRAIPAttnProcessor)]
    assert procs and all(p.scale == 0.5 for p in procs)


def test_projection_shapes_and_shortcut_linearity():
    proj = FaceIDPlusProjection(TINY_PROJ).eval()
    g = torch.Generator().manual_seed(0)
    ids, clip = torch.randn(3, 16, generator=g), torch.randn(3, 7, 24, generator=g)
    with torch.no_grad():
        base = proj(ids, clip, shortcut=True, scale=0.0)
        a = proj(ids, clip, shortcut=True, scale=0.4) - base
        b = proj(ids, clip, shortcut=True, scale=0.8) - base
    assert base.shape == (3, 4, 32)
    assert torch.allclose(b, 2 * a, atol=1e-5) and a.abs().max() > 0


def test_full_size_layout_matches_the_published_checkpoint():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**sd15_unet_config())
        adapter = FaceIDAdapter(unet)
    ip = adapter.ip_adapter.state_dict()
    # SD 1.5 has 16 transformer blocks, each with a self- and a cross-attention layer:
    # 32 layers x 4 LoRAs x (down, up) + 16 cross layers x (to_k_ip, to_v_ip).
    assert len(adapter.ip_adapter) == 32
    assert len(ip) == 32 * 8 + 16 * 2
    assert ip["0.to_q_lora.down.weight"].shape == (128, 320)
    assert ip["1.to_k_ip.weight"].shape == (320, 768)
    assert ip["1.to_k_lora.down.weight"].shape == (128, 768)
    # diffusers orders processors down blocks (0-11), up blocks (12-29), mid block (30, 31).
    assert list(unet.attn_processors)[31].startswith("mid_block")
    assert ip["31.to_k_ip.weight"].shape == (1280, 768)
    assert ip["12.to_q_lora.down.weight"].shape == (128, 1280)
    assert ip["29.to_out_lora.up.weight"].shape == (320, 128)
    proj = adapter.image_proj.state_dict()
    assert proj["proj.0.weight"].shape == (1024, 512)
    assert proj["proj.2.weight"].shape == (3072, 1024)
    assert proj["perceiver_resampler.proj_in.weight"].shape == (768, 1280)
    assert proj["perceiver_resampler.layers.3.0.to_kv.weight"].shape == (1536, 768)
    assert proj["perceiver_resampler.layers.0.1.1.weight"].shape == (3072, 768)
