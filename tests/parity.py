"""Run diffusers and soundsmith on the same folder with the same initial latents and compare mel and waveform."""

from __future__ import annotations

import torch

import soundsmith
from checkpoints import load_reference

TOLERANCE = 1e-4  # relative, float32 on CPU (DESIGN.md's parity contract)


def rel_err(ours, ref) -> float:
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    assert ours.shape == ref.shape, f"shapes differ: {tuple(ours.shape)} vs {tuple(ref.shape)}"
    return ((ours - ref).norm() / ref.norm()).item()


def capture_reference_mel(pipe) -> list:
    """Record the mel the reference hands to its vocoder."""
    seen = []
    original = pipe.mel_spectrogram_to_waveform

    def spy(mel, *args, **kwargs):
        seen.append(mel.detach().clone())
        return original(mel, *args, **kwargs)

    pipe.mel_spectrogram_to_waveform = spy
    return seen


def capture_our_mel(pipe) -> list:
    seen = []
    original = pipe.mel_to_waveform

    def spy(mel, *args, **kwargs):
        seen.append(mel.detach().clone())
        return original(mel, *args, **kwargs)

    pipe.mel_to_waveform = spy
    return seen


def compare(folder, *, latents_shape=None, reference_scheduler=None, sampler=None, ours_kwargs=None,
            **kwargs) -> dict:
    """Run both pipelines with identical arguments (and the same latents when `latents_shape` is given).
    Returns the relative errors of the waveform and of the mel, and both outputs."""
    ref = load_reference(folder)
    if reference_scheduler is not None:
        ref.scheduler = reference_scheduler.from_config(ref.scheduler.config)
    ours = soundsmith.load(folder, device="cpu")
    if latents_shape is not None:
        kwargs["latents"] = torch.randn(latents_shape, generator=torch.Generator().manual_seed(1234))
    ref_mel, our_mel = capture_reference_mel(ref), capture_our_mel(ours)
    with torch.no_grad():
        expected = ref(**{k: _copy(v) for k, v in kwargs.items()}).audios
    got = ours(**{k: _copy(v) for k, v in kwargs.items()}, sampler=sampler, **(ours_kwargs or {})).audios
    return {
        "waveform": rel_err(got, expected),
        "mel": rel_err(our_mel[0], ref_mel[0].squeeze(1) if ref_mel[0].dim() == 4 else ref_mel[0]),
        "ours": got, "reference": expected,
    }


def _copy(value):
    """Generators are stateful: give each pipeline its own identically seeded copy."""
    if isinstance(value, torch.Generator):
        clone = torch.Generator(value.device)
        clone.set_state(value.get_state())
        return clone
    if isinstance(value, torch.Tensor):
        return value.clone()
    return value
