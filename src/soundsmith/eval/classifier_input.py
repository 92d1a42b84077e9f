"""What both adherence classifiers read (eval.classify's CNN and eval.statistics' regression): 16 kHz audio →
AudioLDM normalisation (mean removed, peak 0.5) → natural-log mel (frames, 64) at FRAMES_PER_SECOND frames a second.

    mel_of(waveform)  →  (frames, 64)
"""

import torch

from ..audio import MelConfig, log_mel, normalize_waveform

SAMPLE_RATE = 16000
MEL = MelConfig(sample_rate=SAMPLE_RATE)
FRAMES_PER_SECOND = MEL.sample_rate // MEL.hop_length  # 100 log-mel frames a second


def mel_of(waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at 16 kHz → (frames, 64) classifier input."""
    return log_mel(normalize_waveform(waveform[None]), MEL)[0]
