"""IP-Adapter-FaceID-PlusV2 on a diffusers SD 1.5 UNet: building, loading, ID tokens.

One loading path, ``FaceIDAdapter.from_pretrained(path_or_repo, unet)``, takes a local
file, a local folder or a Hugging Face repo id (default ``h94/IP-Adapter-FaceID``,
``ip-adapter-faceid-plusv2_sd15.bin``). Checkpoints are read with ``weights_only=True`` (or
safetensors) and loaded strictly: a missing or unexpected key is an error.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from gaussianip.errors import AssetError
from gaussianip.prior.attention import FaceIDLoRAIPAttnProcessor, install_faceid_adapter
from gaussianip.prior.face_projection import FaceIDPlusProjection, FaceProjectionConfig
from gaussianip.safe_load import load_torch_weights

DEFAULT_REPO = "h94/IP-Adapter-FaceID"
DEFAULT_FILE = "ip-adapter-faceid-plusv2_sd15.bin"


def read_checkpoint(path: Path) -> dict[str, dict[str, Tensor]]:
    """``{"image_proj": ..., "ip_adapter": ...}`` from a .bin/.pt (weights only) or a
    .safetensors file (keys prefixed ``image_proj.`` / ``ip_adapter.``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(path))
        state: dict[str, dict[str, Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, rest = key.partition(".")
            if group in state:
                state[group][rest] = value
    else:
        try:
            state = load_torch_weights(path, "IP-Adapter checkpoint")
        except AssetError as err:  # unpickling refused, truncated file, ...
            raise AssetError(f"{err} Re-download it.") from None
    missing = [k for k in ("image_proj", "ip_adapter") if k not in state]
    if missing:
        raise AssetError(
            f"'{path}' is not an IP-Adapter FaceID checkpoint: no {' or '.join(missing)} entry."
        )
    return state


def resolve_checkpoint(path_or_repo: str, filename: str = DEFAULT_FILE) -> Path:
    """A local file, a file inside a local folder, or a download from the Hugging Face hub."""
    local = Path(path_or_repo).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        if (local / filename).is_file():
            return local / filename
        raise AssetError(f"No '{filename}' in the folder '{local}'.")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(path_or_repo, filename))
    except Exception as err:
        raise AssetError(
            f"Could not get '{filename}' from '{path_or_repo}' ({type(err).__name__}). "
            "Without network access, download it first (huggingface-cli download "
            f"{DEFAULT_REPO} {DEFAULT_FILE}) or give a local path."
        ) from None


def load_strict(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``load_state_dict`` that names every missing and unexpected key."""
    expected, given = set(module.state_dict()), set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise AssetError(
            f"The {what} weights do not match the model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}. Is this the FaceID-PlusV2 checkpoint for "
            "an SD 1.5 UNet?"
        )
    own = module.state_dict()
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise AssetError(
            f"The {what} weights have other shapes than the model for {wrong[:4]} (e.g. "
            f"{tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}): a checkpoint "
            "for another base model or LoRA rank?"
        )
    module.load_state_dict(state, strict=True)


class FaceIDAdapter(nn.Module):
    """The projection (``image_proj``) and the UNet's processors (``ip_adapter``)."""

    def __init__(
        self,
        unet: nn.Module,
        projection_cfg: FaceProjectionConfig | None = None,
        lora_rank: int = 128,
        num_tokens: int = 4,
    ) -> None:
        super().__init__()
        cfg = projection_cfg or FaceProjectionConfig(
            cross_attention_dim=unet.config.cross_attention_dim, num_tokens=num_tokens
        )
        self.image_proj = FaceIDPlusProjection(cfg)
        self.ip_adapter = install_faceid_adapter(unet, lora_rank, num_tokens)
        param = next(unet.parameters())
        self.image_proj.to(device=param.device, dtype=param.dtype)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str,
        unet: nn.Module,
        filename: str = DEFAULT_FILE,
        projection_cfg: FaceProjectionConfig | None = None,
        lora_rank: int = 128,
        num_tokens: int = 4,
    ) -> FaceIDAdapter:
        state = read_checkpoint(resolve_checkpoint(path_or_repo, filename))
        adapter = cls(unet, projection_cfg, lora_rank, num_tokens)
        load_strict(adapter.image_proj, state["image_proj"], "image_proj")
        load_strict(adapter.ip_adapter, state["ip_adapter"], "ip_adapter")
        return adapter

    def set_scale(self, scale: float) -> None:
        """Weight of the ID tokens in every cross-attention layer (0.5 / 0.6 in the method)."""
        for proc in self.ip_adapter:
            if isinstance(proc, FaceIDLoRAIPAttnProcessor):
                proc.scale = scale

    def encode(self, id_embeds: Tensor, clip_embeds: Tensor, shortcut_scale: float) -> Tensor:
        """ID tokens [B, 4, D] from ArcFace embeddings [B, 512] and CLIP-H penultimate
        states [B, 257, 1280] (PlusV2: shortcut mode with ``shortcut_scale``)."""
        p = next(self.image_proj.parameters())
        return self.image_proj(
            id_embeds.to(p), clip_embeds.to(p), shortcut=True, scale=shortcut_scale
        )

    def uncond_tokens(self, uncond_clip_embeds: Tensor, shortcut_scale: float) -> Tensor:
        """The unconditional ID tokens: a zero ArcFace embedding and the CLIP features of an
        all-zero (normalised) image, as the reference implementation builds them."""
        zeros = uncond_clip_embeds.new_zeros(
            uncond_clip_embeds.shape[0], self.image_proj.cfg.id_embeddings_dim
        )
        return self.encode(zeros, uncond_clip_embeds, shortcut_scale)
