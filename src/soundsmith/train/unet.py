"""Stage 3: the latent-diffusion UNet, the AudioLDM recipe.

ε-prediction on VAE latents scaled by the VAE's scaling_factor, timesteps uniform over the 1000 DDPM steps of the
real AudioLDM schedule (scaled_linear betas 0.0015 → 0.0195), MSE loss. The UNet is our UNet in the AudioLDM layout
(UNet2DConditionModel, CLAP vector → `simple_projection` class embedding concatenated after the time embedding,
self-attention only). Conditioning during training is a precomputed CLAP vector per clip:
- "audio": the CLAP audio embedding of the clip itself (AudioLDM's trick: no captions needed, and the text tower is
  only used at generation time, relying on CLAP's shared space);
- "text": the CLAP text embedding of the clip's caption.
With probability `dropout` (10 %) the vector is replaced by the CLAP text embedding of "" — the unconditional input
the pipeline feeds for classifier-free guidance (an empty negative prompt).
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.unet import UNet, UNetConfig
from .loop import save_component
from .vae import DIFFUSERS_VERSION

BETA_START, BETA_END, TRAIN_STEPS = 0.0015, 0.0195, 1000  # AudioLDM's DDPM schedule
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_end": BETA_END,
    "beta_schedule": "scaled_linear", "beta_start": BETA_START, "clip_sample": False,
    "num_train_timesteps": TRAIN_STEPS, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "steps_offset": 1, "trained_betas": None,
}


def alphas_cumprod(scheduler_config: dict = SCHEDULER_CONFIG) -> torch.Tensor:
    """ᾱ_t for t = 0 … T−1, (T,) float32, of a scheduler_config.json: scaled_linear betas = linspace(√β₀, √β₁)²,
    linear betas = linspace(β₀, β₁)."""
    from ..errors import CheckpointError

    start, end = scheduler_config.get("beta_start", BETA_START), scheduler_config.get("beta_end", BETA_END)
    steps = scheduler_config.get("num_train_timesteps", TRAIN_STEPS)
    kind = scheduler_config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        raise CheckpointError(f"scheduler beta_schedule={kind!r}: training supports scaled_linear and linear")
    if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
        raise CheckpointError("training supports prediction_type 'epsilon' only")
    return torch.cumprod(1 - betas, 0).float()


def unet_config(class_dim: int, channels=(64, 128, 192), layers: int = 1, heads: int = 4, latent_channels: int = 8,
                sample_size: int = 64, attention: int | None = None) -> dict:
    """A diffusers UNet2DConditionModel config in the AudioLDM layout: self-attention in the last `attention`
    blocks (default: every block but the first) and in the middle block."""
    n = len(channels)
    attention = n - 1 if attention is None else attention
    return {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION,
        "block_out_channels": list(channels), "layers_per_block": layers, "attention_head_dim": heads,
        "cross_attention_dim": list(channels), "in_channels": latent_channels, "out_channels": latent_channels,
        "down_block_types": ["DownBlock2D"] * (n - attention) + ["CrossAttnDownBlock2D"] * attention,
        "up_block_types": ["CrossAttnUpBlock2D"] * attention + ["UpBlock2D"] * (n - attention),
        "class_embed_type": "simple_projection", "projection_class_embeddings_input_dim": class_dim,
        "class_embeddings_concat": True, "norm_num_groups": 32, "sample_size": sample_size,
        "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "norm_eps": 1e-5, "use_linear_projection": False,
    }


class DiffusionObjective(torch.nn.Module):
    """ε-prediction MSE of `unet` (a new UNet from `config` when None) under a scheduler_config's betas.

    offset_noise: the standard deviation of a constant added to each latent channel of the training noise (offset
    noise, Guttenberg 2023). With plain Gaussian noise the per-channel mean of the starting latents survives
    sampling, and in the demo's latent space that mean sets the clip's level, so the seed, not the prompt, decides
    how loud a clip is (issue 21); with offset noise the UNet learns to predict, and so remove, such a mean."""

    def __init__(self, config: dict, unet: UNet | None = None, scheduler_config: dict = SCHEDULER_CONFIG,
                 offset_noise: float = 0.0):
        super().__init__()
        self.config = dict(config)
        self.offset_noise = offset_noise
        if unet is None:
            unet = UNet(UNetConfig.from_dict(config))
            if unet.class_embedding is not None:  # unit-norm CLAP vectors have components ~ 1/√D: start the class
                with torch.no_grad():            # projection √D larger so the condition is not drowned at first
                    unet.class_embedding.weight.mul_(unet.class_embedding.in_features ** 0.5)
        self.unet = unet
        self.register_buffer("alphas_cumprod", alphas_cumprod(scheduler_config), persistent=False)

    def forward(self, batch: dict):
        x0, cond = batch["latents"], batch["cond"]
        noise = torch.randn_like(x0)
        if self.offset_noise:
            noise = noise + self.offset_noise * torch.randn(*x0.shape[:2], 1, 1, device=x0.device, dtype=x0.dtype)
        t = torch.randint(0, len(self.alphas_cumprod), (len(x0),), device=x0.device)
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(self.unet(xt, t, class_labels=cond), noise)
        return loss, {}


def batches(mean: torch.Tensor, std: torch.Tensor, scale: float, cond: torch.Tensor, uncond: torch.Tensor,
            batch: int, dropout: float = 0.1, crop: int | None = None, weights: torch.Tensor | None = None):
    """mean, std: VAE posteriors (N, z, h, w); cond (N, D); uncond (D,). Each draw samples latents from the
    posterior, scales them, and drops the conditioning to `uncond` with probability `dropout`. crop: train on a
    random window of that many latent rows (a multiple of 4), which the convolutional UNet generalises from.
    weights (N,): clips drawn in proportion to them (oversampling), else uniformly."""
    rows = mean.shape[2]
    crop = rows if crop is None else min(crop, rows)

    def draw(step: int, rank: int, world: int) -> dict:
        if weights is None:
            idx = torch.randint(len(mean), (batch // world,))
        else:
            idx = torch.multinomial(weights.double(), batch // world, replacement=True)
        start = int(torch.randint(0, rows - crop + 1, ()))
        m, s = mean[idx, :, start:start + crop].float(), std[idx, :, start:start + crop].float()
        latents = (m + s * torch.randn(m.shape)) * scale
        c = cond[idx].float().clone()
        c[torch.rand(len(idx)) < dropout] = uncond.float()
        return {"latents": latents, "cond": c}

    return draw


def oversampling(categories: list[str], factors: dict[str, float]) -> torch.Tensor:
    """(N,) sampling weights: factors[category] for clips of that category, 1 for the rest."""
    return torch.tensor([float(factors.get(c, 1.0)) for c in categories])


def load(folder: Path) -> tuple[dict, UNet]:
    """A diffusers-layout unet/ folder → (its config, our UNet in float32 with every weight trainable)."""
    from ..checkpoints import load_module, read_json

    config = read_json(Path(folder) / "config.json")
    unet = load_module(UNet, UNetConfig.from_dict(config), Path(folder), "diffusion_pytorch_model", torch.float32,
                       "cpu")
    return config, unet.train().requires_grad_(True)


def save(unet: UNet, config: dict, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
    """unet/config.json + diffusion_pytorch_model.safetensors (diffusers layout)."""
    return save_component(unet, config, folder, dtype=dtype)


def exporter():
    def export(objective: DiffusionObjective, out: Path) -> None:
        save(objective.unet, objective.config, out / "unet")

    return export
