"""Stage 2: the VAE — our AutoencoderKL between log-mels (B, 1, T, 80) and latents (B, 8, T/4, 20).

Loss: L1 between the log-mel and its reconstruction from a posterior sample, plus kl_weight × the mean KL divergence
to N(0, I) (LDM's recipe without its adversarial term, which CPU step counts cannot afford). On export the
scaling_factor is set to 1 / std of the posterior means over a sample of clips, so scaled latents have unit variance
for the diffusion stage.
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.vae import AutoencoderKL, VAEConfig
from .data import Clips
from .loop import save_component

DIFFUSERS_VERSION = "0.42.1"


def vae_config(channels=(16, 32, 64), latent_channels: int = 8, groups: int = 16, layers: int = 1,
               mid_attention: bool = False, scaling_factor: float = 1.0) -> dict:
    """A diffusers AutoencoderKL config.json for 1-channel log-mels, downsampling by 2^(len(channels) − 1)."""
    n = len(channels)
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
        "block_out_channels": list(channels), "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n, "in_channels": 1, "out_channels": 1,
        "latent_channels": latent_channels, "layers_per_block": layers, "norm_num_groups": groups,
        "mid_block_add_attention": mid_attention, "sample_size": 256, "scaling_factor": scaling_factor,
        "force_upcast": True,
    }


class VAEObjective(torch.nn.Module):
    def __init__(self, config: dict, kl_weight: float = 1e-4, vae: AutoencoderKL | None = None):
        super().__init__()
        self.config = dict(config)
        self.vae = AutoencoderKL(VAEConfig.from_dict(config)) if vae is None else vae
        self.kl_weight = kl_weight
        self.decoder_only = False

    @classmethod
    def from_folder(cls, folder: Path, kl_weight: float = 1e-4, decoder_only: bool = False) -> "VAEObjective":
        """Continue the VAE in folder/vae (a pipeline folder or a `train vae` OUT). decoder_only: the encoder and
        quant_conv are frozen (no gradients, eval mode), so latents already encoded, and the UNet trained on them,
        stay valid; the exported scaling_factor then comes out the same."""
        from .. import checkpoints
        from ..errors import CheckpointError

        if not (Path(folder) / "vae" / "config.json").is_file():
            raise CheckpointError(f"--init {folder}: no vae/config.json in it")
        config = checkpoints.read_json(Path(folder) / "vae" / "config.json")
        objective = cls(config, kl_weight, vae=load(Path(folder) / "vae").train().requires_grad_(True))
        objective.decoder_only = decoder_only
        if decoder_only:
            for module in objective.encoding_modules():
                module.requires_grad_(False)
        return objective

    def train(self, mode: bool = True):
        super().train(mode)
        if self.decoder_only:  # the frozen encoder stays in eval mode
            for module in self.encoding_modules():
                module.eval()
        return self

    def encoding_modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.vae.encoder, self.vae.quant_conv) if m is not None]

    def forward(self, batch: dict):
        mel = batch["mel"][:, None]  # (B, 1, T, M)
        if self.decoder_only:
            with torch.no_grad():
                mean, logvar = self.vae.encode(mel)
        else:
            mean, logvar = self.vae.encode(mel)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        recon = self.vae.decode(z)
        l1 = F.l1_loss(recon, mel)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return l1 + self.kl_weight * kl, {"l1": float(l1.detach()), "kl": float(kl.detach())}


def batches(clips: Clips, batch: int, crop: int = 64):
    """Random `crop`-frame windows (a multiple of 4) of random clips: the VAE is convolutional, so short crops
    train it as well as whole clips at a fraction of the cost."""
    frames = clips.mels.shape[1]
    crop = min(crop, frames) // 4 * 4

    def draw(step: int, rank: int, world: int) -> dict:
        idx = torch.randint(len(clips), (batch // world,))
        start = int(torch.randint(0, frames - crop + 1, ()))
        return {"mel": clips.mels[idx, start:start + crop].float()}

    return draw


@torch.no_grad()
def encode(vae: AutoencoderKL, mels: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, M) log-mels → posterior (mean, std), each (N, z, T/f, M/f) float32, unscaled."""
    vae = vae.eval()
    means, stds = [], []
    for i in range(0, len(mels), batch):
        mean, logvar = vae.encode(mels[i:i + batch].float()[:, None])
        means.append(mean)
        stds.append(torch.exp(0.5 * logvar))
    return torch.cat(means), torch.cat(stds)


def scaling_factor(vae: AutoencoderKL, clips: Clips, n: int = 256) -> float:
    """1 / std of posterior means over (up to) n clips spread over the set."""
    idx = torch.linspace(0, len(clips) - 1, min(n, len(clips))).long()
    was_training = vae.training
    mean, _ = encode(vae, clips.mels[idx])
    vae.train(was_training)
    return float(1.0 / mean.std().clamp(min=1e-6))


def save(vae: AutoencoderKL, config: dict, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
    """vae/config.json + diffusion_pytorch_model.safetensors (diffusers layout)."""
    return save_component(vae, config, folder, dtype=dtype)


def exporter(clips: Clips):
    def export(objective: VAEObjective, out: Path) -> None:
        # a decoder-only run keeps its init's factor: the UNet's latents were scaled by it (the clips measured here
        # may be another selection or normalisation than those it was computed on)
        factor = (objective.config["scaling_factor"] if objective.decoder_only
                  else scaling_factor(objective.vae, clips))
        config = {**objective.config, "scaling_factor": factor}
        save(objective.vae, config, out / "vae")

    return export


def load(folder: Path) -> AutoencoderKL:
    """A saved vae/ folder → our AutoencoderKL (float32, eval)."""
    from .. import checkpoints

    folder = Path(folder)
    config = VAEConfig.from_dict(checkpoints.read_json(folder / "config.json"))
    return checkpoints.load_module(AutoencoderKL, config, folder, "diffusion_pytorch_model", torch.float32, "cpu")
