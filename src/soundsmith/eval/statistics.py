"""A second adherence classifier of a different kind: multinomial logistic regression on summary statistics of the
level-normalised log-mel — no convolutions, no learned features — so that an adherence figure that holds under both
this and the CNN (eval.classify) is not one network's quirk.

    soundsmith data classifier synth-s1/manifest.jsonl --kind logistic --out logistic.pt

Input: the same classifier log-mel as the CNN (eval.classifier_input.mel_of: 16 kHz, AudioLDM normalisation,
(frames, 64) natural-log mel at 100 frames a second). Features (FEATURES of them), computed by `features`:
- level normalisation: the log-mel minus the mean log energy of its louder half of frames (a gain on the waveform is
  a constant in the log domain, so it cancels);
- per mel band: mean, standard deviation, 10th and 90th percentile over time, mean absolute frame-to-frame change;
- modulation: 8 groups of 8 bands, each group's log-energy envelope (mean removed) → its power in 6 octave bands
  of modulation frequency 0.78–50 Hz, as log shares of the envelope's total power;
- the share of frames more than 30 dB (in log-mel units: 6.9) below the clip's loudest frame.
The features are standardised with the training clips' mean and deviation; the weights are fitted by L-BFGS with
an L2 penalty. It stores as {"kind": "logistic", …} and eval.classify.load_classifier reads either kind.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.eval_prompts import ALL_CATEGORIES
from .classifier_input import FRAMES_PER_SECOND

BANDS = 64
GROUPS = 8
MODULATION_OCTAVES = 6  # 0.78–1.6, …, 25–50 Hz at 100 frames a second
SILENCE_BELOW = math.log(10 ** (30 / 20))  # 30 dB in natural-log magnitude units
FEATURES = 5 * BANDS + GROUPS * MODULATION_OCTAVES + 1


@dataclass(frozen=True)
class LogisticConfig:
    categories: tuple = ALL_CATEGORIES
    n_features: int = FEATURES
    l2: float = 1e-3


def features(mel: torch.Tensor) -> torch.Tensor:
    """(frames, 64) classifier log-mel → (FEATURES,) statistics (float32). Clips shorter than 4 frames are padded
    with their floor."""
    mel = mel.float()
    if mel.shape[0] < 4:
        mel = F.pad(mel, (0, 0, 0, 4 - mel.shape[0]), value=float(mel.min()))
    energy = mel.mean(dim=1)
    loud = energy >= energy.median()
    x = mel - energy[loud].mean()
    q = torch.quantile(x, torch.tensor([0.1, 0.9]), dim=0)
    per_band = [x.mean(0), x.std(0), q[0], q[1], (x[1:] - x[:-1]).abs().mean(0)]

    groups = x.reshape(x.shape[0], GROUPS, BANDS // GROUPS).mean(dim=2)  # (frames, 8)
    envelope = groups - groups.mean(dim=0)
    n = envelope.shape[0]
    power = torch.fft.rfft(envelope, n=max(n, 2 * FRAMES_PER_SECOND), dim=0).abs() ** 2  # ≥ 0.5 Hz resolution
    freqs = torch.fft.rfftfreq(max(n, 2 * FRAMES_PER_SECOND), d=1 / FRAMES_PER_SECOND)
    total = power[1:].sum(dim=0) + 1e-8
    modulation = []
    for k in range(MODULATION_OCTAVES):
        low, high = 50 / 2 ** (MODULATION_OCTAVES - k), 50 / 2 ** (MODULATION_OCTAVES - k - 1)
        band = (freqs >= low) & (freqs < high) if k < MODULATION_OCTAVES - 1 else (freqs >= low)
        modulation.append(torch.log(power[band].sum(dim=0) / total + 1e-6))
    silence = (energy < energy.max() - SILENCE_BELOW).float().mean()[None]
    return torch.cat(per_band + [torch.stack(modulation, dim=1).reshape(-1), silence])


class LogisticClassifier(nn.Module):
    """log-mel (B, frames, 64) → logits (B, len(categories)): standardised statistics, one linear layer."""

    def __init__(self, config: LogisticConfig = LogisticConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("std", torch.ones(config.n_features))
        self.linear = nn.Linear(config.n_features, len(config.categories))

    def standardised(self, mel: torch.Tensor) -> torch.Tensor:
        return (torch.stack([features(m) for m in mel]) - self.mean) / self.std

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardised(mel))


def fit(model: LogisticClassifier, mels: list[torch.Tensor], labels: torch.Tensor, iterations: int = 200) -> float:
    """Standardise on these clips, then minimise cross-entropy + l2·|W|² by L-BFGS. → the final loss."""
    x = torch.stack([features(m) for m in mels])
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp_min(1e-4))
    x = (x - model.mean) / model.std
    optimizer = torch.optim.LBFGS(model.linear.parameters(), lr=1.0, max_iter=iterations,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model.linear(x), labels) + model.config.l2 * model.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    model.eval()
    return float(loss.detach())


def saved(model: LogisticClassifier) -> dict:
    return {"kind": "logistic", "config": asdict(model.config), "state_dict": model.state_dict()}


def from_saved(saved: dict) -> LogisticClassifier:
    config = LogisticConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
    model = LogisticClassifier(config)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
