"""Best-of-n: score candidates against their prompt with CLAP and order each prompt's candidates best first.

score = cos(CLAP_text(prompt), CLAP_audio(waveform)), in [−1, 1]. Differences from diffusers' `score_waveforms`:
- each waveform is scored against its own prompt and reordered among that prompt's candidates only (the reference
  ranks every waveform of the batch against every prompt, so one prompt can take another's audio, diffusers #13602);
- deterministic: audio longer than CLAP's 10 s window is scored over evenly spaced windows covering it, their
  embeddings averaged (the reference crops at a random place drawn from numpy's global RNG);
- resampling to CLAP's 48 kHz uses our band-limited resampler (no librosa).
"""

import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from . import audio as audio_lib
from . import checkpoints
from .checks import given
from .errors import CheckpointError, SoundsmithError, warn
from .models.conditioning import clap_text_embeds


class Ranker:
    """A CLAP model with both towers, its tokenizer and its feature extractor."""

    def __init__(self, clap, tokenizer, feature_extractor):
        if not hasattr(clap, "audio_model"):
            raise CheckpointError("ranking needs a CLAP model with an audio tower (ClapModel); this one has only text")
        if feature_extractor is None:
            raise CheckpointError("ranking needs CLAP's feature extractor (preprocessor_config.json)")
        self.clap, self.tokenizer, self.feature_extractor = clap, tokenizer, feature_extractor

    @classmethod
    def from_folder(cls, folder: str | Path) -> "Ranker":
        """A pipeline folder whose text_encoder is a ClapModel (MusicLDM, AudioLDM 2), or a CLAP folder (config.json
        of a ClapModel beside its tokenizer and preprocessor_config.json, like laion/clap-htsat-unfused)."""
        folder = checkpoints.resolve(str(folder))
        if (folder / "model_index.json").exists():
            clap_dir, tok_dir, fe_dir = folder / "text_encoder", folder / "tokenizer", folder / "feature_extractor"
        else:
            clap_dir = tok_dir = fe_dir = folder
        if checkpoints.read_json(clap_dir / "config.json").get("model_type") != "clap":
            raise CheckpointError(f"{clap_dir} is not a ClapModel: a ranker needs CLAP's text and audio towers")
        return cls(checkpoints.load_transformers("ClapModel", clap_dir),
                   checkpoints.load_transformers("RobertaTokenizer", tok_dir),
                   checkpoints.load_transformers("ClapFeatureExtractor", fe_dir))

    @torch.no_grad()
    def audio_embeds(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """(N, samples) → (N, D) unit vectors; long audio → mean over windows covering it, renormalised."""
        rate = self.feature_extractor.sampling_rate
        window = int(self.feature_extractor.nb_max_samples)
        resampled = audio_lib.resample(waveforms.float().cpu(), sample_rate, rate)
        pieces, owner = [], []
        for i, wave in enumerate(resampled):
            count = max(1, math.ceil(len(wave) / window))
            starts = [0] if count == 1 else [round(k * (len(wave) - window) / (count - 1)) for k in range(count)]
            for start in starts:
                pieces.append(wave[start:start + window].numpy())
                owner.append(i)
        features = self.feature_extractor(pieces, sampling_rate=rate, return_tensors="pt").input_features
        param = next(self.clap.parameters())
        pooled = self.clap.audio_model(input_features=features.to(param.device, param.dtype)).pooler_output
        embeds = F.normalize(self.clap.audio_projection(pooled), dim=-1).float()
        owner = torch.tensor(owner, device=embeds.device)
        summed = torch.zeros(len(resampled), embeds.shape[1], device=embeds.device).index_add_(0, owner, embeds)
        return F.normalize(summed, dim=-1)

    @torch.no_grad()
    def scores(self, waveforms: torch.Tensor, sample_rate: int, texts: list[str]) -> torch.Tensor:
        """Cosine similarity of each waveform (N, samples) with its text (N strings) → (N,)."""
        text = clap_text_embeds(self.clap, self.tokenizer, texts, self.tokenizer.model_max_length).float().cpu()
        return (self.audio_embeds(waveforms, sample_rate).cpu() * text).sum(-1)


def rank(ranker: Ranker, waveforms: torch.Tensor, sample_rate: int, prompts: list[str], n: int):
    """Reorder (B·n, samples) so that each prompt's n candidates come best first → (waveforms, scores (B·n,))."""
    texts = [p for p in prompts for _ in range(n)]
    scores = ranker.scores(waveforms, sample_rate, texts).view(len(prompts), n)
    order = scores.argsort(dim=1, descending=True)
    flat = (order + torch.arange(len(prompts))[:, None] * n).reshape(-1)
    return waveforms[flat], scores.gather(1, order).reshape(-1)


@lru_cache(maxsize=2)
def load_ranker(folder: str) -> Ranker:
    return Ranker.from_folder(folder)


def pipeline_ranker(pipe, ranker=None, label: str = "ranker=") -> Ranker | None:
    """The ranker a pipeline uses: `ranker` (a Ranker, or a folder / name to load one from), else the pipeline's own
    CLAP when it has an audio tower (MusicLDM, AudioLDM 2), else None with a warning saying how to get one (`label`:
    how the caller's door names the ranker argument)."""
    if isinstance(ranker, Ranker):
        return ranker
    if ranker is not None:
        try:
            return load_ranker(str(ranker))
        except SoundsmithError as exc:  # the argument named: the message alone would read as about the model
            raise type(exc)(f"{given(label, str(ranker))}: {exc}") from None
    if hasattr(pipe.text_encoder, "audio_model") and getattr(pipe, "feature_extractor", None) is not None:
        return Ranker(pipe.text_encoder, pipe.tokenizer, pipe.feature_extractor)
    warn(f"{pipe.name}: candidates are returned unranked, because this checkpoint's CLAP has no audio tower; "
         f"pass {label} (a MusicLDM or AudioLDM 2 folder, or a CLAP model folder) to rank them")
    return None
