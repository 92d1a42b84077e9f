"""Variations of an input (the original AudioLDM CLI's `--mode generation -f FILE`): new audio conditioned on the CLAP
*audio* embedding of the input where text-to-audio puts the CLAP text embedding of a prompt.

input ─ mono, model rate ─ mean removed, peak 0.5 ─ 48 kHz ─ CLAP audio tower ─► (1, D) unit vector ─► class labels
unconditional branch: CLAP text embedding of "" (or of a negative prompt), as the original's

AudioLDM and MusicLDM were trained on CLAP audio embeddings and sampled with text ones (CLAP puts both in one
space), so the audio embedding is the conditioning they saw in training. Which CLAP:
- MusicLDM: its own ClapModel (text and audio towers) and feature extractor;
- AudioLDM: the checkpoints keep only CLAP's text tower, so a CLAP folder must be given (`clap=`, `--clap`: a ClapModel
  with its tokenizer and preprocessor_config.json). It must be the checkpoint's CLAP: its text tower has to embed a
  few probe texts as the checkpoint's does (cosine ≥ SAME_SPACE), which makes its audio tower's space the one the
  UNet knows; another CLAP is refused in one line.
- AudioLDM 2 is refused: its UNet cross-attends to GPT-2 states generated from text (its training's audio path went
  through AudioMAE features, whose encoder the checkpoints do not include), and its repository's CLI accepts -f in
  generation mode and ignores it. There is nothing to reproduce faithfully.

Differences from the original: the whole input is embedded (audio longer than CLAP's 10 s window as the mean of
windows covering it, as rank.py scores) where the original cut or zero-padded it to the output's duration first and
cropped 10 s at random; candidates are ranked by the cosine of their CLAP audio embedding with the input's (the
original ranked them against the empty text prompt).
"""

import weakref

import torch

from . import rank as ranking
from .checks import given
from .errors import InvalidArgument, SoundsmithError
from .models.conditioning import clap_text_embeds

SAME_SPACE = 0.99  # least cosine between two CLAPs' text embeddings of each probe for one shared space
PROBES = ("", "a dog barking", "rain on a tin roof", "a piano melody", "a man speaking")
_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # pipeline → CLAPs found in its space


def clap_for(pipe, folder=None, label: str = "clap=") -> ranking.Ranker:
    """The CLAP (both towers) whose audio embedding conditions `pipe`: `folder`'s when given (checked to share the
    checkpoint's space), else the checkpoint's own; refused in one line when there is none or the family cannot."""
    if pipe.pipeline_class == "AudioLDM2Pipeline":
        raise InvalidArgument(f"vary needs an AudioLDM or MusicLDM checkpoint; {pipe.name} is AudioLDM 2, whose UNet "
                              f"is conditioned on GPT-2 states generated from text (its repository has no "
                              f"audio-conditioned generation to reproduce): use transfer to re-render audio with it")
    if folder is not None:
        try:
            clap = ranking.load_ranker(str(folder))
        except SoundsmithError as exc:  # the argument named: the message alone would read as about the model
            raise type(exc)(f"{given(label, str(folder))}: {exc}") from None
        checked = _CHECKED.setdefault(pipe, set())
        if str(folder) not in checked:  # once per pipeline and CLAP folder
            check_same_space(pipe, clap, folder)
            checked.add(str(folder))
        return clap
    if hasattr(pipe.text_encoder, "audio_model") and getattr(pipe, "feature_extractor", None) is not None:
        return ranking.Ranker(pipe.text_encoder, pipe.tokenizer, pipe.feature_extractor)
    raise InvalidArgument(f"vary needs a CLAP audio tower and {pipe.name}'s CLAP has only its text tower: give "
                          f"{label} a CLAP folder in the checkpoint's text–audio space (a ClapModel with its tokenizer "
                          f"and preprocessor_config.json: the CLAP the checkpoint was trained with)")


@torch.no_grad()
def check_same_space(pipe, clap: ranking.Ranker, folder) -> None:
    """Refuse a CLAP whose text tower does not embed PROBES as the checkpoint's text encoder does."""
    pipe.stage("text_encoder")
    ours = clap_text_embeds(pipe.text_encoder, pipe.tokenizer, list(PROBES), pipe.tokenizer.model_max_length)
    theirs = clap_text_embeds(clap.clap, clap.tokenizer, list(PROBES), clap.tokenizer.model_max_length)
    ours, theirs = ours.float().cpu(), theirs.float().cpu()
    if ours.shape != theirs.shape:
        raise InvalidArgument(f"CLAP folder {folder} embeds in {theirs.shape[-1]} dimensions, {pipe.name}'s CLAP in "
                              f"{ours.shape[-1]}: give the CLAP the checkpoint was trained with")
    cosine = torch.nn.functional.cosine_similarity(ours, theirs, dim=-1)
    worst = int(cosine.argmin())
    if cosine[worst] < SAME_SPACE:
        raise InvalidArgument(f"CLAP folder {folder} is not {pipe.name}'s CLAP: its text embedding of "
                              f"{PROBES[worst]!r} has cosine {float(cosine[worst]):.3f} with the checkpoint's (at "
                              f"least {SAME_SPACE} needed for one text–audio space): give the CLAP the checkpoint was "
                              f"trained with")


@torch.no_grad()
def audio_embedding(pipe, clap: ranking.Ranker, waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at the model's rate → (1, D) unit CLAP audio embedding of the input, normalised as the original
    normalised it (mean removed, peak 0.5)."""
    from .audio import normalize_waveform

    if clap.clap is pipe.text_encoder:
        pipe.stage("text_encoder")
    return clap.audio_embeds(normalize_waveform(waveform[None].float()), pipe.sample_rate)


def ranker(pipe, clap: ranking.Ranker, target: torch.Tensor):
    """The best-of-n step for `engine._output`: (waveforms (n, samples)) → (best first, cosine of each with the
    input's embedding `target` (1, D))."""
    def rank(waveforms):
        if clap.clap is pipe.text_encoder:
            pipe.stage("text_encoder")
        scores = (clap.audio_embeds(waveforms, pipe.sample_rate).cpu() * target.cpu()).sum(-1)
        order = scores.argsort(descending=True)
        return waveforms[order], scores[order]

    return rank
