"""Session fixtures: each tiny random-weight checkpoint folder is built once per test session (see checkpoints.py)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: never let a loader try the network
sys.path.insert(0, str(Path(__file__).parent))  # `from checkpoints import ...` / `from parity import ...`

# A runner that starts pytest in the background (CI does) leaves SIGINT ignored, and every process a test starts
# inherits that: Python then installs no KeyboardInterrupt handler, and a test's Ctrl-C never arrives. The CLI rightly
# keeps a user's `nohup … &` choice, so the tests put the ordinary disposition back for the processes they start.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _build(tmp_path_factory, name: str, builder, **kwargs) -> Path:
    pytest.importorskip("diffusers")
    return builder(tmp_path_factory.mktemp(name) / name, **kwargs)


@pytest.fixture(scope="session")
def tiny_vocoder(tmp_path_factory) -> Path:
    """A folder with vocoder/: a random 16-channel HiFi-GAN with the demo's mel recipe (22,050 Hz, hop 256,
    80 mels), as `soundsmith train vocoder` writes it."""
    import torch

    from soundsmith.models.vocoder import HifiGan, VocoderConfig
    from soundsmith.train import vocoder

    config = {**vocoder.UNIVERSAL_CONFIG, "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
              "resblock_dilation_sizes": [[1, 3]]}
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-vocoder")
    vocoder.save(HifiGan(VocoderConfig.from_dict(config)), config, folder / "vocoder")
    return folder


@pytest.fixture(scope="session")
def tiny_audioldm(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm

    return _build(tmp_path_factory, "tiny-audioldm", build_audioldm)


@pytest.fixture(scope="session")
def tiny_audioldm_legacy_vae(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm

    return _build(tmp_path_factory, "tiny-audioldm-legacy-vae", build_audioldm, legacy_vae_keys=True)


@pytest.fixture(scope="session")
def tiny_musicldm(tmp_path_factory) -> Path:
    from checkpoints import build_musicldm

    return _build(tmp_path_factory, "tiny-musicldm", build_musicldm)


@pytest.fixture(scope="session")
def tiny_audioldm2(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm2

    return _build(tmp_path_factory, "tiny-audioldm2", build_audioldm2, variant="base")


@pytest.fixture(scope="session")
def tiny_audioldm2_large(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm2

    return _build(tmp_path_factory, "tiny-audioldm2-large", build_audioldm2, variant="large")


@pytest.fixture(scope="session")
def tiny_audioldm2_gpt2model(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm2

    return _build(tmp_path_factory, "tiny-audioldm2-gpt2model", build_audioldm2, variant="gpt2model")


@pytest.fixture(scope="session")
def tiny_audioldm2_tts(tmp_path_factory) -> Path:
    from checkpoints import build_audioldm2

    return _build(tmp_path_factory, "tiny-audioldm2-tts", build_audioldm2, variant="tts")


@pytest.fixture(scope="session")
def tiny_10ms(tiny_audioldm, tmp_path_factory):
    """The tiny AudioLDM with a 10 ms-hop vocoder (hop 160 at 16 kHz, like the real checkpoints) instead of the 4-sample
    one, so that a minute is 6000 mel frames, 3000 latent rows and 187 windows of the UNet's 32 rows (0.64 s)."""
    import shutil

    import torch
    from checkpoints import _reinit_unit_gain
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    folder = tmp_path_factory.mktemp("tiny-10ms") / "tiny-audioldm-10ms"
    shutil.copytree(tiny_audioldm, folder)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[10, 16],
        upsample_kernel_sizes=[20, 32], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]],
        normalize_before=False))
    _reinit_unit_gain(vocoder.eval(), torch.Generator().manual_seed(0))
    shutil.rmtree(folder / "vocoder")
    vocoder.save_pretrained(folder / "vocoder")
    return folder
