"""AudioLDM (Liu et al. 2023): a CLAP text embedding conditions the UNet as a class embedding.

prompt ─ CLAP text tower ─► (B, 512) L2-normalised ─► UNet class_labels (concatenated after the time embedding).
"""

import torch

from .. import checkpoints, engine
from ..checks import check_negative, subject
from ..errors import InvalidArgument
from ..models.conditioning import clap_text_embeds
from ..request import PYTHON_LABELS, Request
from .base import Pipeline, repeat_per_prompt


class AudioLDM(Pipeline):
    pipeline_class = "AudioLDMPipeline"
    default_steps = 10
    default_guidance = 2.5

    def __init__(self, *, text_encoder, tokenizer, **shared):
        super().__init__(**shared)
        self.text_encoder, self.tokenizer = text_encoder, tokenizer

    @classmethod
    def load_conditioning(cls, folder, index, device, dtype) -> dict:
        encoder_class = checkpoints.component_class(folder, index, "text_encoder",
                                                    ("ClapTextModelWithProjection", "ClapModel"))
        return {
            "text_encoder": checkpoints.load_transformers(encoder_class, folder / "text_encoder", dtype, device),
            "tokenizer": checkpoints.load_transformers(checkpoints.component_class(folder, index, "tokenizer"),
                                                       folder / "tokenizer"),
        }

    def modules(self):
        return {**super().modules(), "text_encoder": self.text_encoder}

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str] | None, negative: list[str] | None, n: int, do_cfg: bool,
                      prompt_embeds=None, negative_prompt_embeds=None) -> torch.Tensor:
        """→ class labels (B·n, D), or ([uncond; cond]) (2·B·n, D) with guidance. Tokenisation as the reference:
        prompts padded to the tokenizer's max length; negative prompts to the embedding width."""
        self.stage("text_encoder")
        if prompt_embeds is None:
            prompt_embeds = clap_text_embeds(self.text_encoder, self.tokenizer, prompts,
                                             self.tokenizer.model_max_length)
        dtype = self.dtype  # the text encoder may compute in float32 (pipelines.base.network_dtype)
        batch = prompt_embeds.shape[0]
        prompt_embeds = repeat_per_prompt(prompt_embeds.to(self.device, dtype), n)
        if not do_cfg:
            return prompt_embeds
        if negative_prompt_embeds is None:
            negative = negative or [""] * batch
            negative_prompt_embeds = clap_text_embeds(self.text_encoder, self.tokenizer, negative,
                                                      prompt_embeds.shape[1])
        negative_prompt_embeds = repeat_per_prompt(negative_prompt_embeds.to(self.device, dtype), n)
        return torch.cat([negative_prompt_embeds, prompt_embeds])

    def conditioning(self, prompts, negative, n: int, do_cfg: bool, *, transcription=None, max_new_tokens=None,
                     embeds: dict, labels: dict) -> tuple[dict, int]:
        """(UNet keyword tensors, prompts in the batch) for checked prompts or precomputed `embeds`
        (prompt_embeds / negative_prompt_embeds, (B, 512) CLAP vectors used as given)."""
        for name, value in (("transcription", transcription), ("max_new_tokens", max_new_tokens)):
            if value is not None:
                raise InvalidArgument(f"{subject(labels.get(name, name))} needs an AudioLDM 2 checkpoint; {self.name} "
                                      f"is a {type(self).__name__}")
        unknown = sorted(set(embeds) - {"prompt_embeds", "negative_prompt_embeds"})
        if unknown:
            raise InvalidArgument(f"{unknown[0]}= applies to AudioLDM 2; {self.name} is a {type(self).__name__}")
        prompt_embeds, negative_prompt_embeds = embeds.get("prompt_embeds"), embeds.get("negative_prompt_embeds")
        if (prompts is None) == (prompt_embeds is None):
            raise InvalidArgument("give either prompt= or prompt_embeds=, exactly one of them")
        batch = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        negative = check_negative(negative, batch)
        if negative is not None and negative_prompt_embeds is not None:
            raise InvalidArgument("give either negative_prompt= or negative_prompt_embeds=, not both")
        if prompt_embeds is not None and negative_prompt_embeds is not None \
                and prompt_embeds.shape != negative_prompt_embeds.shape:
            raise InvalidArgument(f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds "
                                  f"{tuple(negative_prompt_embeds.shape)} must have the same shape")
        labels = self.encode_prompt(prompts, negative, n, do_cfg, prompt_embeds, negative_prompt_embeds)
        return {"class_labels": labels}, batch

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, audio_length_in_s: float | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 negative_prompt: str | list[str] | None = None, num_waveforms_per_prompt: int = 1, eta: float = 0.0,
                 generator=None, latents: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt_embeds: torch.Tensor | None = None, return_dict: bool = True, callback=None,
                 callback_steps: int = 1, cross_attention_kwargs: dict | None = None, output_type: str = "np", *,
                 seed: int | None = None, sampler: str | None = None, sampler_options: dict | None = None,
                 rank: bool = True, ranker=None, progress: bool | None = None,
                 loudness: float | None = None):
        """Generate audio from text, with the arguments and defaults of diffusers' AudioLDMPipeline
        (MusicLDMPipeline for MusicLDM): num_inference_steps None → 10 (MusicLDM 200), guidance_scale None → 2.5
        (MusicLDM 2.0), or the model folder's soundsmith.json.

        prompt: text(s) describing the sound. audio_length_in_s: seconds (default: the UNet's training length,
        5.12 s); up to pipe.long_form.above_seconds (20.48 s) one pass as diffusers, longer in overlapping windows of
        the training length decoded in exact chunks (soundsmith.longform), any length up to an hour.
        num_inference_steps / guidance_scale / eta: sampler steps, classifier-free guidance weight (> 1 turns
        it on), DDIM noise. negative_prompt: what to steer away from (a single string applies to every prompt).
        num_waveforms_per_prompt: candidates per prompt. generator / seed: randomness (seed= makes a CPU generator).
        latents: initial noise (B·n, 8, rows, 16). prompt_embeds / negative_prompt_embeds: precomputed CLAP vectors
        (B, 512), used as given. callback(step, t, latents) every callback_steps steps. output_type: "np", "pt" or
        "latent". sampler: a sampler name (`soundsmith.samplers`), default the checkpoint's scheduler.
        With num_waveforms_per_prompt > 1 each prompt's candidates are ranked best first by CLAP (rank=False keeps
        generation order); AudioLDM's CLAP has no audio tower, so it needs ranker= (a MusicLDM / AudioLDM 2 /
        CLAP folder, or a soundsmith.rank.Ranker). The scores come back in .scores.
        progress: soundsmith's stage lines on stderr (text, denoising n/N steps, decoding …); False for none.
        loudness: None returns the model's raw level (as diffusers); a target in LUFS (-16 is what the CLI writes)
        brings each waveform to it under a -1 dBTP true peak, recorded in out.info["loudness"].
        Returns AudioOutput (.audios float32 (B·n, samples), .sample_rate) or (audios,) when return_dict is False.
        A thin adapter: the arguments become a soundsmith.Request, run by soundsmith.engine.
        """
        request = Request(prompt=prompt, negative_prompt=negative_prompt, duration=audio_length_in_s,
                          steps=num_inference_steps, guidance=guidance_scale, candidates=num_waveforms_per_prompt,
                          eta=eta, seed=seed, sampler=sampler, sampler_options=sampler_options, rank=rank,
                          loudness=loudness, _labels=PYTHON_LABELS)
        return engine.run(self, request, generator=generator, latents=latents,
                          embeds={k: v for k, v in (("prompt_embeds", prompt_embeds),
                                                    ("negative_prompt_embeds", negative_prompt_embeds)) if v is not None},
                          callback=callback, callback_steps=callback_steps,
                          cross_attention_kwargs=cross_attention_kwargs, output_type=output_type,
                          return_dict=return_dict, progress=self.show_progress if progress is None else progress,
                          ranker=ranker)


class MusicLDM(AudioLDM):
    """MusicLDM (Chen et al. 2024): AudioLDM's architecture trained on music, conditioned through a full ClapModel
    (text and audio towers), 200 steps and guidance 2.0 by default, 10.24 s."""

    pipeline_class = "MusicLDMPipeline"
    default_steps = 200
    default_guidance = 2.0

    def __init__(self, *, feature_extractor=None, **rest):
        super().__init__(**rest)
        self.feature_extractor = feature_extractor

    @classmethod
    def load_conditioning(cls, folder, index, device, dtype) -> dict:
        encoder_class = checkpoints.component_class(folder, index, "text_encoder", ("ClapModel",))
        extractor = checkpoints.component_class(folder, index, "feature_extractor", required=False)
        return {
            "text_encoder": checkpoints.load_transformers(encoder_class, folder / "text_encoder", dtype, device),
            "tokenizer": checkpoints.load_transformers(checkpoints.component_class(folder, index, "tokenizer"),
                                                       folder / "tokenizer"),
            "feature_extractor": (checkpoints.load_transformers(extractor, folder / "feature_extractor")
                                  if extractor else None),
        }
