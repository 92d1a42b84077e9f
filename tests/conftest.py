"""Session fixtures: each tiny random-weight checkpoint folder is built once per test session (see checkpoints.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: never let a loader try the network
sys.path.insert(0, str(Path(__file__).parent))  # `from checkpoints import ...` / `from parity import ...`


def _build(tmp_path_factory, name: str, builder, **kwargs) -> Path:
    pytest.importorskip("diffusers")
    return builder(tmp_path_factory.mktemp(name) / name, **kwargs)


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
