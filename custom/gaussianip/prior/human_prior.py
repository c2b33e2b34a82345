"""The human-centric diffusion prior: SD 1.5 UNet + text encoder + VAE, the OpenPose
ControlNet and IP-Adapter-FaceID-PlusV2 (method.md, "Priors"), frozen.

``HumanPrior.build(cfg)`` loads every part by Hugging Face id or local folder (fp16 on
CUDA, fp32 on the CPU), or, with ``preset: tiny``, builds the same classes with tiny
configs and random weights. Any part but the UNet can be switched off from the config
(no ControlNet; no identity, i.e. plain text-to-3D).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import Tensor

from gaussianip.errors import ConfigError
from gaussianip.prior.compile import NETWORKS, compile_blocks, compile_model, distillation_fast_path
from gaussianip.prior.cuda_graphs import GraphedCall
from gaussianip.prior.ip_adapter import FaceIDAdapter
from gaussianip.prior.lora_fusion import LoRAFusion
from gaussianip.prior.prompt_length import PromptLengthCheck

# OpenAI CLIP's image normalisation (CLIPImageProcessor's defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class PriorConfig:
    # "full": the published weights; "tiny": tiny random models; "random": full-size
    # architectures with random weights (benchmarks without downloads).
    preset: str = "full"
    base_model: str = "SG161222/Realistic_Vision_V4.0_noVAE"
    vae: str | None = "stabilityai/sd-vae-ft-mse"  # None: the base model's own VAE
    controlnet: str | None = "lllyasviel/control_v11p_sd15_openpose"  # None: no pose control
    controlnet_scale: float = 1.0
    ip_adapter: str | None = "h94/IP-Adapter-FaceID"  # None: no identity (text-to-3D)
    ip_adapter_file: str = "ip-adapter-faceid-plusv2_sd15.bin"
    image_encoder: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    id_scale: float = 0.5  # weight of the ID tokens in cross-attention (0.6 in refinement)
    shortcut_scale: float = 0.4  # PlusV2 CLIP shortcut s_scale (0.5 in refinement)
    half_precision: bool = True  # fp16 on CUDA; the CPU always uses fp32
    # Speed-ups, each switchable to compare before and after with `gaussianip bench`
    # (BENCHMARKS.md has the measurements):
    channels_last: bool = False  # NHWC convolutions in the VAE, UNet and ControlNet (CUDA)
    cudnn_benchmark: bool = False  # cuDNN autotuning for the fixed shapes (CUDA)
    # torch.compile the distillation step's frozen networks (UNet, ControlNet, and the VAE
    # encoder with its backward). Refinement keeps the eager modules: it swaps attention
    # processors and changes shapes, which would only trigger recompilation.
    compile: bool = False
    # Which of them ("vae", "unet", "controlnet"). The UNet and ControlNet cost most of the
    # compilation; replayed as CUDA graphs (``cuda_graphs``) they take 45 ms a step compiled
    # against 69 ms eager (BENCHMARKS.md, round 5).
    compile_networks: list[str] = field(default_factory=lambda: list(NETWORKS))
    compile_backend: str = "inductor"  # "aot_eager" compiles fast (tests), no fusion
    # "model": each network as one graph (faster steps); "blocks": its repeated blocks, one
    # graph per block class and shape (prior/compile.py; BENCHMARKS.md has both).
    compile_scope: str = "model"
    # torch.compile's mode: "default", "reduce-overhead" (CUDA graphs; scope "model"
    # only) or "max-autotune-no-cudagraphs".
    compile_mode: str = "default"
    # Replay the distillation step's UNet + ControlNet call as CUDA graphs of our own
    # (prior/cuda_graphs.py), captured in about 0.25 s, compiled or eager alike: the
    # host stops launching their hundreds of small kernels one by one. CUDA only.
    cuda_graphs: bool = False
    # The VAE's one attention layer has a single 512-wide head, which flash attention does
    # not take; PyTorch's fallback kernel is slow in backward (17 ms a stage-1 step on an
    # H100). Plain softmax(QK^T)V, the same function, is faster at these 4096 tokens.
    vae_plain_attention: bool = True
    # Keep the text and image encoders (about 1.5 GB in fp16) on the CPU between their
    # few uses (set-up, start of refinement). CUDA only; results are unchanged.
    offload_encoders: bool = True
    # Fold the FaceID LoRA into the UNet's q/k/v/out weights for the distillation step
    # (the same linear maps, up to fp16 rounding; prior/lora_fusion.py). Refinement calls
    # get the original weights and the separate LoRA back.
    fuse_lora: bool = True
    # Recompute the VAE encoder's first N down blocks in the distillation step's backward
    # instead of storing their activations (less memory, a little more time; 0: off).
    vae_checkpoint_blocks: int = 0

    def __post_init__(self) -> None:
        from gaussianip.prior.compile import MODES, SCOPES

        if self.compile_scope not in SCOPES:
            raise ConfigError(f"system.prior.compile_scope='{self.compile_scope}' is unknown; use "
                              f"one of {', '.join(SCOPES)}.")  # fmt: skip
        if self.compile_mode not in MODES:
            raise ConfigError(f"system.prior.compile_mode='{self.compile_mode}' is unknown; use "
                              f"one of {', '.join(MODES)}.")  # fmt: skip
        unknown = [n for n in self.compile_networks if n not in NETWORKS]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ConfigError(f"system.prior.compile_networks names {names}; use a list of "
                              f"{', '.join(NETWORKS)}, e.g. [vae].")  # fmt: skip
        if self.cuda_graphs and self.compile and self.compile_mode == "reduce-overhead":
            raise ConfigError("system.prior.cuda_graphs=true and compile_mode=reduce-overhead both "
                              "replay CUDA graphs; keep one: system.prior.cuda_graphs=false for "
                              "torch.compile's, or compile_mode=default for ours (as "
                              "shipped).")  # fmt: skip
        if self.compile_mode == "reduce-overhead" and self.compile_scope != "model":
            raise ConfigError("system.prior.compile_mode=reduce-overhead (CUDA graphs) needs "
                              "system.prior.compile_scope=model.")  # fmt: skip
        if not 0 <= self.vae_checkpoint_blocks <= 4:
            raise ConfigError("system.prior.vae_checkpoint_blocks is a number of VAE down blocks, "
                              f"0 to 4, got {self.vae_checkpoint_blocks}.")  # fmt: skip
        for name in ("controlnet_scale", "id_scale", "shortcut_scale"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"system.prior.{name} is a weight >= 0, got {value}.")


def ddim_scheduler() -> DDIMScheduler:
    """SD 1.5's DDIM schedule, as method.md gives it."""
    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip


class HumanPrior:
    """The frozen models and the three operations distillation needs."""

    def __init__(self, cfg, tokenizer, text_encoder, unet, vae, controlnet, adapter,
                 image_encoder, device: torch.device, dtype: torch.dtype) -> None:  # fmt: skip
        self.cfg = cfg
        self.tokenizer, self.text_encoder, self.unet, self.vae = tokenizer, text_encoder, unet, vae
        self.controlnet, self.adapter, self.image_encoder = controlnet, adapter, image_encoder
        self.device, self.dtype = device, dtype
        self.prompt_length = PromptLengthCheck(tokenizer)
        self.scheduler = ddim_scheduler()
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(device)
        for model in (text_encoder, unet, vae, controlnet, image_encoder, adapter):
            if model is not None:
                model.requires_grad_(False)
                model.eval()
        if adapter is not None:
            adapter.set_scale(cfg.id_scale)
        if cfg.vae_plain_attention:
            from diffusers.models.attention_processor import AttnProcessor

            vae.set_attn_processor(AttnProcessor())
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
            if cfg.channels_last:
                for model in (unet, vae, controlnet):
                    if model is not None:
                        model.to(memory_format=torch.channels_last)
            if cfg.offload_encoders:
                for model in (text_encoder, image_encoder):
                    if model is not None:
                        model.to("cpu")
        self._lora_fusion = LoRAFusion(unet) if adapter is not None and cfg.fuse_lora else None
        # The networks of the distillation step (``fast=True`` calls): compiled or eager.
        self._set_up_fast_path()
        chosen = set(cfg.compile_networks) if cfg.compile else set()
        if chosen and cfg.compile_scope == "blocks":  # compiled in place, fast path only
            for name, model in (("vae", vae.encoder), ("unet", unet), ("controlnet", controlnet)):
                if name in chosen and model is not None:
                    compile_blocks(model, cfg.compile_backend, cfg.compile_mode)
        self._graphed_noise = (GraphedCall(self._fast_noise)
                               if cfg.cuda_graphs and device.type == "cuda" else None)  # fmt: skip
        self._offloaded = False

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, cfg: PriorConfig, device: str | torch.device = "cpu") -> HumanPrior:
        device = torch.device(device)
        dtype = torch.float16 if (device.type == "cuda" and cfg.half_precision) else torch.float32
        if cfg.preset == "tiny":
            parts = _tiny_parts(cfg)
        elif cfg.preset == "random":
            # Random weights drawn where they will live (initialising 1.5 billion
            # parameters on the CPU took most of the benchmark's 38 s set-up), in their
            # final precision (full-precision copies would not fit an 8 GB card).
            default_dtype = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                with torch.device(device):
                    parts = _random_full_parts(cfg)
            finally:
                torch.set_default_dtype(default_dtype)
        elif cfg.preset == "full":
            parts = _pretrained_parts(cfg)
        else:
            raise ConfigError(
                f"Unknown prior preset '{cfg.preset}'; use 'full', 'tiny' or 'random'."
            )
        parts = {k: (v.to(device=device, dtype=dtype) if isinstance(v, torch.nn.Module) else v)
                 for k, v in parts.items()}  # fmt: skip
        return cls(cfg, device=device, dtype=dtype, **parts)

    # ------------------------------------------------------------------ conditions
    @contextlib.contextmanager
    def _on_device(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """``model`` on the prior's device for the block, back on the CPU after it when
        ``offload_encoders`` keeps it there."""
        offload = self.cfg.offload_encoders and self.device.type == "cuda"
        if offload:
            model.to(self.device)
        try:
            yield model
        finally:
            if offload:
                model.to("cpu")

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Tensor:
        """Text embeddings [N, 77, D] (the text encoder's last hidden state); a warning
        (once per prompt) for each prompt cut to the encoder's length."""
        self.prompt_length.check(prompts)
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        with self._on_device(self.text_encoder) as text_encoder:
            return text_encoder(ids.to(self.device))[0].to(self.dtype)

    @torch.no_grad()
    def encode_identity(self, embedding: np.ndarray | None, crop: np.ndarray | None,
                        shortcut_scale: float | None = None) -> Tensor:  # fmt: skip
        """ID tokens [1, 4, D] from an ArcFace embedding [512] and an aligned face crop
        [224, 224, 3] uint8; ``None`` for both gives the unconditional tokens (a zero
        embedding and an all-zero normalised image, as the reference implementation).
        ``shortcut_scale`` defaults to the config's (distillation's) value."""
        if self.adapter is None:
            raise ConfigError("This prior has no identity adapter (prior.ip_adapter is null).")
        if crop is None:
            pixels = torch.zeros(1, 3, 224, 224, device=self.device, dtype=self.dtype)
        else:
            image = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float() / 255
            mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
            std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
            pixels = ((image - mean) / std).to(self.dtype)
        with self._on_device(self.image_encoder) as image_encoder:
            clip = image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
        dim = self.adapter.image_proj.cfg.id_embeddings_dim
        ids = torch.zeros(1, dim) if embedding is None else torch.from_numpy(embedding)[None]
        scale = self.cfg.shortcut_scale if shortcut_scale is None else shortcut_scale
        return self.adapter.encode(ids.to(self.device), clip, scale)

    # ------------------------------------------------------------------ images and noise
    def encode_rgb(self, rgb: Tensor, resolution: int, sample: bool = True, fast: bool = False,
                   generator: torch.Generator | None = None,
                   noise: Tensor | None = None) -> Tensor:  # fmt: skip
        """Latents [B, 4, r/8, r/8] of renders ``rgb`` [B, H, W, 3] in [0, 1], with
        gradient (the render is resized to ``resolution`` first). ``sample=True`` draws
        from the VAE posterior (with ``generator`` when given, so runs are reproducible;
        or ``mean + std * noise`` with a given standard-normal ``noise`` [B, 4, r/8, r/8]),
        ``sample=False`` takes its mean; ``fast=True`` runs the distillation step's
        (possibly compiled) encoder."""
        x = rgb.permute(0, 3, 1, 2)
        if x.shape[-1] != resolution or x.shape[-2] != resolution:
            x = F.interpolate(x, (resolution, resolution), mode="bilinear", align_corners=False)
        x = (x * 2 - 1).to(self.dtype)
        if self.cfg.channels_last and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        encode = self._vae_moments if fast else VAEMoments(self.vae)
        with distillation_fast_path() if fast else contextlib.nullcontext():
            moments = encode(x)
        posterior = DiagonalGaussianDistribution(moments)
        if sample and noise is not None:
            latents = posterior.mean + posterior.std * noise.to(posterior.mean)
        else:
            latents = posterior.sample(generator) if sample else posterior.mean
        return latents * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> Tensor:
        """Images [B, H, W, 3] in [0, 1] (float32) of latents [B, 4, H/8, W/8]."""
        x = self.vae.decode((latents / self.vae.config.scaling_factor).to(self.dtype)).sample
        return ((x.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)

    def predict_noise(self, latents: Tensor, t: Tensor, context: Tensor,
                      pose: Tensor | None = None, fast: bool = False) -> Tensor:  # fmt: skip
        """The UNet's (+ ControlNet's) noise prediction [N, 4, h, w], no gradient.

        latents [N, 4, h, w], t [N], context [N, T, D] (text tokens, then ID tokens when
        there is an adapter), pose [N, 3, H, W] OpenPose images in [0, 1] or None.
        ``fast=True``: the distillation step's (possibly compiled, possibly replayed as a
        CUDA graph) networks.
        """
        if self._lora_fusion is not None and fast:  # folded for distillation
            self._lora_fusion.fuse()
        elif self._lora_fusion is not None:  # separate for refinement (processors swapped)
            self._lora_fusion.unfuse()
        if not fast:
            with torch.no_grad():
                return self._noise(self.unet, self.controlnet, latents, t, context, pose)
        if self.inductor_cuda_graphs:
            # Each call is a new step for the replayed graphs: the previous call's outputs
            # were already copied out (``.float()``) by the caller.
            torch.compiler.cudagraph_mark_step_begin()
        with torch.no_grad(), distillation_fast_path():
            if self._graphed_noise is not None:
                return self._graphed_noise(latents, t, context, pose)
            return self._fast_noise(latents, t, context, pose)

    def _fast_noise(self, latents: Tensor, t: Tensor, context: Tensor,
                    pose: Tensor | None) -> Tensor:  # fmt: skip
        return self._noise(self._fast_unet, self._fast_controlnet, latents, t, context, pose)

    def _noise(self, unet, controlnet, latents: Tensor, t: Tensor, context: Tensor,
               pose: Tensor | None) -> Tensor:  # fmt: skip
        residuals: dict[str, object] = {}
        if controlnet is not None and pose is not None:
            down, mid = controlnet(
                latents,
                t,
                encoder_hidden_states=context,
                controlnet_cond=pose.to(self.dtype),
                conditioning_scale=self.cfg.controlnet_scale,
                return_dict=False,
            )
            residuals = {"down_block_additional_residuals": down,
                         "mid_block_additional_residual": mid}  # fmt: skip
        return unet(latents, t, encoder_hidden_states=context, **residuals).sample

    @property
    def inductor_cuda_graphs(self) -> bool:
        """True when torch.compile's ``reduce-overhead`` mode replays the distillation
        step's UNet and ControlNet as CUDA graphs."""
        cfg = self.cfg
        return (cfg.compile and cfg.compile_mode == "reduce-overhead"
                and cfg.compile_backend == "inductor" and self.device.type == "cuda"
                and bool({"unet", "controlnet"} & set(cfg.compile_networks)))  # fmt: skip

    def _set_up_fast_path(self) -> None:
        """The distillation step's networks: compiled as whole models where the config
        says so (``compile_scope: model``), else the eager modules."""
        cfg = self.cfg
        self._fast_path_released = False
        self._vae_moments: torch.nn.Module = VAEMoments(self.vae, cfg.vae_checkpoint_blocks)
        self._fast_unet, self._fast_controlnet = self.unet, self.controlnet
        chosen = set(cfg.compile_networks) if cfg.compile else set()
        if not chosen or cfg.compile_scope != "model":
            return
        if "vae" in chosen:
            # The encoder's forward and backward keep the GPU busy (BENCHMARKS.md): CUDA
            # graphs would only add a memory pool there, so it takes the default mode.
            mode = "default" if cfg.compile_mode == "reduce-overhead" else cfg.compile_mode
            self._vae_moments = compile_model(self._vae_moments, cfg.compile_backend, mode)
        if "unet" in chosen:
            self._fast_unet = compile_model(self.unet, cfg.compile_backend, cfg.compile_mode)
        if "controlnet" in chosen and self.controlnet is not None:
            self._fast_controlnet = compile_model(self.controlnet, cfg.compile_backend,
                                                  cfg.compile_mode)  # fmt: skip

    def prepare_run(self) -> None:
        """Make a prior that already ran an avatar ready for the next one: its networks
        back on the device (after ``offload``) and the distillation step's compiled
        networks back (after ``release_fast_path``; torch.compile finds their kernels in
        its cache, so nothing is compiled again). A fresh prior is unchanged."""
        if self._offloaded:
            keep_on_cpu = self.cfg.offload_encoders and self.device.type == "cuda"
            for model in (self.unet, self.vae, self.controlnet):
                if model is not None:
                    model.to(self.device)
            if not keep_on_cpu:
                for model in (self.text_encoder, self.image_encoder):
                    if model is not None:
                        model.to(self.device)
            self._offloaded = False
        if self._fast_path_released:
            self._set_up_fast_path()

    def release_fast_path(self) -> None:
        """Drop the distillation step's compiled networks (stage 1 is over): the eager
        modules stay for refinement, and the CUDA graphs' memory pool is freed for it."""
        self._vae_moments = VAEMoments(self.vae, self.cfg.vae_checkpoint_blocks)
        self._fast_unet, self._fast_controlnet = self.unet, self.controlnet
        self._fast_path_released = True
        if self._graphed_noise is not None:
            self._graphed_noise.reset()
        if self.inductor_cuda_graphs:
            from torch._inductor import cudagraph_trees

            cudagraph_trees.reset_cudagraph_trees()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def device_gib(self) -> float:
        """GiB of the networks' weights now on a GPU (0 once ``offload`` moved them)."""
        tensors = [t for model in (self.text_encoder, self.unet, self.vae, self.controlnet,
                                   self.image_encoder, self.adapter) if model is not None
                   for t in (*model.parameters(), *model.buffers())]  # fmt: skip
        unique = {id(t): t for t in tensors if t.is_cuda}  # the adapter shares the UNet's
        return sum(t.numel() * t.element_size() for t in unique.values()) / 2**30

    def offload(self) -> None:
        """Move every network to the CPU (after refinement, reconstruction needs none)."""
        for model in (self.text_encoder, self.unet, self.vae, self.controlnet,
                      self.image_encoder):  # fmt: skip
            if model is not None:
                model.to("cpu")
        self._offloaded = True
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class VAEMoments(torch.nn.Module):
    """The VAE encoder up to its Gaussian's moments [B, 8, H/8, W/8] (``vae.encode``
    without the distribution object, so that ``torch.compile`` sees tensors only).

    ``checkpoint_blocks`` > 0 recomputes the first that many down blocks in the backward
    pass instead of keeping their activations: at 512 px those full- and half-resolution
    blocks hold most of the encoder's saved tensors (gigabytes for 4 views)."""

    def __init__(self, vae: torch.nn.Module, checkpoint_blocks: int = 0) -> None:
        super().__init__()
        self.vae = vae
        self.checkpoint_blocks = checkpoint_blocks

    def forward(self, x: Tensor) -> Tensor:
        if self.checkpoint_blocks and torch.is_grad_enabled():
            h = self._encoder_checkpointed(x)
        else:
            h = self.vae.encoder(x)
        quant_conv = getattr(self.vae, "quant_conv", None)
        return quant_conv(h) if quant_conv is not None else h

    def _encoder_checkpointed(self, x: Tensor) -> Tensor:
        """diffusers' ``Encoder.forward`` with its first down blocks checkpointed."""
        from torch.utils.checkpoint import checkpoint

        encoder = self.vae.encoder
        h = encoder.conv_in(x)
        for i, block in enumerate(encoder.down_blocks):
            h = (
                checkpoint(block, h, use_reentrant=False)
                if i < self.checkpoint_blocks
                else block(h)
            )
        h = encoder.mid_block(h)
        return encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(h)))


def _tiny_parts(cfg: PriorConfig) -> dict:
    from gaussianip.prior import tiny

    tiny.seeded(0)
    tokenizer = tiny.tiny_tokenizer()
    unet = tiny.tiny_unet()
    return {
        "tokenizer": tokenizer,
        "text_encoder": tiny.tiny_text_encoder(len(tokenizer)),
        "vae": tiny.tiny_vae(),
        "controlnet": tiny.tiny_controlnet(unet) if cfg.controlnet else None,
        "adapter": FaceIDAdapter(unet, tiny.TINY_PROJECTION, lora_rank=4)
        if cfg.ip_adapter
        else None,
        "image_encoder": tiny.tiny_image_encoder() if cfg.ip_adapter else None,
        "unet": unet,
    }


def _pretrained_parts(cfg: PriorConfig) -> dict:
    """Load each part by hub id or local folder, as the public weights are published."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    base = cfg.base_model
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    vae = (AutoencoderKL.from_pretrained(cfg.vae) if cfg.vae
           else AutoencoderKL.from_pretrained(base, subfolder="vae"))  # fmt: skip
    return {
        "tokenizer": CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        "text_encoder": CLIPTextModel.from_pretrained(base, subfolder="text_encoder"),
        "vae": vae,
        "controlnet": ControlNetModel.from_pretrained(cfg.controlnet) if cfg.controlnet else None,
        "adapter": (
            FaceIDAdapter.from_pretrained(cfg.ip_adapter, unet, cfg.ip_adapter_file)
            if cfg.ip_adapter
            else None
        ),  # fmt: skip
        "image_encoder": (
            CLIPVisionModelWithProjection.from_pretrained(cfg.image_encoder)
            if cfg.ip_adapter
            else None
        ),  # fmt: skip
        "unet": unet,
    }


def _random_full_parts(cfg: PriorConfig) -> dict:
    """Full-size SD 1.5 architectures with random weights, built from embedded configs."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from gaussianip.prior import configs, tiny

    tiny.seeded(0)
    unet = UNet2DConditionModel(**configs.sd15_unet_config())
    return {
        "tokenizer": tiny.tiny_tokenizer(),  # ids < 514: any vocabulary will do for timing
        "text_encoder": CLIPTextModel(CLIPTextConfig(**configs.CLIP_L_TEXT_CONFIG)),
        "vae": AutoencoderKL(**configs.SD15_VAE_CONFIG),
        "controlnet": ControlNetModel.from_unet(unet) if cfg.controlnet else None,
        "adapter": FaceIDAdapter(unet) if cfg.ip_adapter else None,
        "image_encoder": (
            CLIPVisionModelWithProjection(CLIPVisionConfig(**configs.CLIP_H_VISION_CONFIG))
            if cfg.ip_adapter
            else None
        ),  # fmt: skip
        "unet": unet,
    }
