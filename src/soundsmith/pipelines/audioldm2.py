"""AudioLDM 2 (Liu et al. 2024): CLAP + Flan-T5 (or VITS phonemes for speech) → projection → GPT-2 generates the
"language of audio"; the UNet cross-attends to the GPT-2 states and to the T5/VITS states.

prompt ─ CLAP ─► (B, 1, 512) ┐
prompt ─ T5 ───► (B, L, 1024) ┴─ projection ─► [SOS clap EOS SOS₁ t5 EOS₁] ─ GPT-2 × max_new_tokens ─► (B, 8, 768)
UNet: encoder_hidden_states = GPT-2 states (unmasked), encoder_hidden_states_1 = T5 states (padding mask).
"""

from pathlib import Path

import torch

from .. import checkpoints, engine
from ..checks import check_negative, check_positive_int, check_prompt, subject
from ..errors import InvalidArgument
from ..models.vae import dtype_of
from ..models.conditioning import (Projection, clap_text_embeds, gpt2_continue, projection_config, t5_states,
                                   vits_states)
from ..request import PYTHON_LABELS, Request
from .base import Pipeline, family_default, given, repeat_per_prompt


class AudioLDM2(Pipeline):
    pipeline_class = "AudioLDM2Pipeline"
    default_steps = 200
    default_guidance = 3.5

    def __init__(self, *, text_encoder, tokenizer, text_encoder_2, tokenizer_2, projection_model, language_model,
                 feature_extractor=None, **shared):
        super().__init__(**shared)
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.projection_model, self.language_model = projection_model, language_model
        self.feature_extractor = feature_extractor

    @property
    def is_speech(self) -> bool:
        """TTS checkpoints encode a transcription with VITS instead of the prompt with T5."""
        return self.text_encoder_2.config.model_type == "vits"

    @classmethod
    def load_conditioning(cls, folder: Path, index: dict, device, dtype) -> dict:
        def entry(key, allowed=None):
            return checkpoints.component_class(folder, index, key, allowed)

        encoder_2 = entry("text_encoder_2", ("T5EncoderModel", "VitsModel"))
        entry("language_model", ("GPT2Model", "GPT2LMHeadModel"))
        projection_path = folder / "projection_model" / "config.json"
        projection_cfg = projection_config(checkpoints.read_json(projection_path), str(projection_path))
        feature_extractor = None
        extractor = checkpoints.component_class(folder, index, "feature_extractor", required=False)
        if extractor is not None:
            feature_extractor = checkpoints.load_transformers(extractor, folder / "feature_extractor")
        return {
            "text_encoder": checkpoints.load_transformers(entry("text_encoder"), folder / "text_encoder", dtype,
                                                          device),
            "tokenizer": checkpoints.load_transformers(entry("tokenizer"), folder / "tokenizer"),
            "text_encoder_2": checkpoints.load_transformers(encoder_2, folder / "text_encoder_2", dtype, device),
            "tokenizer_2": checkpoints.load_transformers(entry("tokenizer_2"), folder / "tokenizer_2"),
            # GPT2Model whatever the folder says: an LMHead checkpoint loads into it, and only states are used
            "language_model": checkpoints.load_transformers("GPT2Model", folder / "language_model", dtype, device),
            "projection_model": checkpoints.load_module(Projection, projection_cfg, folder / "projection_model",
                                                        "diffusion_pytorch_model", dtype, device),
            "feature_extractor": feature_extractor,
        }

    def modules(self):
        return {**super().modules(), "text_encoder": self.text_encoder, "text_encoder_2": self.text_encoder_2,
                "projection_model": self.projection_model, "language_model": self.language_model}

    def _encode(self, texts: list[str], transcriptions: list[str] | None, max_new_tokens: int,
                text_length: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One branch (positive, or negative when text_length is the positive T5 length) → T5/VITS states, their
        mask and the generated GPT-2 states, as the reference's encode_prompt computes them."""
        negative = text_length is not None
        clap = clap_text_embeds(self.text_encoder, self.tokenizer, texts, self.tokenizer.model_max_length)[:, None]
        clap_mask = torch.ones(len(texts), 1, dtype=torch.long, device=clap.device)
        if self.is_speech and negative:
            length = self.tokenizer_2.model_max_length
            states = torch.zeros(len(texts), length, self.text_encoder_2.config.hidden_size, device=clap.device,
                                 dtype=self.text_encoder_2.dtype)
            mask = torch.zeros(len(texts), length, device=clap.device, dtype=self.text_encoder_2.dtype)
        elif self.is_speech:
            states, mask = vits_states(self.text_encoder_2.text_encoder, self.tokenizer_2, transcriptions)
        elif negative:
            states, mask = t5_states(self.text_encoder_2, self.tokenizer_2, texts, "max_length", text_length)
        else:
            states, mask = t5_states(self.text_encoder_2, self.tokenizer_2, texts, True,
                                     self.tokenizer_2.model_max_length)
        width = dtype_of(self.projection_model)  # float32 in a bfloat16 pipeline (pipelines.base.network_dtype)
        projected, projected_mask = self.projection_model(clap.to(width), clap_mask, states.to(width), mask)
        generated = gpt2_continue(self.language_model, projected.to(self.language_model.dtype), projected_mask,
                                  max_new_tokens)
        return states, mask, generated

    @torch.no_grad()
    def encode_prompt(self, prompts, transcriptions, negative, n: int, do_cfg: bool, max_new_tokens: int,
                      prompt_embeds=None, negative_prompt_embeds=None, generated_prompt_embeds=None,
                      negative_generated_prompt_embeds=None, attention_mask=None, negative_attention_mask=None) -> dict:
        """→ UNet keyword tensors, batched [uncond; cond] with guidance."""
        self.stage("text_encoder", "text_encoder_2", "projection_model", "language_model")
        if prompt_embeds is None:
            prompt_embeds, attention_mask, generated_prompt_embeds = self._encode(prompts, transcriptions,
                                                                                  max_new_tokens, None)
        batch = prompt_embeds.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones(prompt_embeds.shape[:2], dtype=torch.long)
        cond = [prompt_embeds, attention_mask, generated_prompt_embeds]
        if do_cfg:
            if negative_prompt_embeds is None:
                negative = negative or [""] * batch
                uncond = list(self._encode(negative, None, max_new_tokens, prompt_embeds.shape[1]))
            else:
                if negative_attention_mask is None:
                    negative_attention_mask = torch.ones(negative_prompt_embeds.shape[:2], dtype=torch.long)
                uncond = [negative_prompt_embeds, negative_attention_mask, negative_generated_prompt_embeds]
            cond = [torch.cat([repeat_per_prompt(u.to(self.device), n), repeat_per_prompt(c.to(self.device), n)])
                    for u, c in zip(uncond, cond)]
        else:
            cond = [repeat_per_prompt(c.to(self.device), n) for c in cond]
        states, mask, generated = cond
        return {"encoder_hidden_states": generated.to(self.dtype), "encoder_hidden_states_1": states.to(self.dtype),
                "encoder_attention_mask_1": mask}

    def check_transcription(self, transcription, batch: int, encode: bool = True,
                            label: str = "transcription=") -> list[str] | None:
        """The words to speak, one per prompt, for a TTS checkpoint (None otherwise, or when encode is False:
        prompt_embeds given); a transcription for a non-TTS checkpoint is refused."""
        if self.is_speech and encode:
            if transcription is None:
                raise InvalidArgument(f"{self.name} is a text-to-speech checkpoint: give {subject(label)} (the words "
                                      f"to speak) beside the prompt (the voice)")
            transcriptions = check_prompt(transcription, label)
            if len(transcriptions) != batch:
                raise InvalidArgument(f"transcription has {len(transcriptions)} entries but there are {batch} prompts")
            return transcriptions
        if transcription is not None and not self.is_speech:
            raise InvalidArgument(f"{subject(label)} needs a text-to-speech checkpoint (audioldm2-gigaspeech, "
                                  f"audioldm2-ljspeech); {self.name} is not one")
        return None

    def check_max_new_tokens(self, max_new_tokens, label: str = "max_new_tokens") -> int:
        """GPT-2 states to generate: the language model config's (8) by default."""
        if max_new_tokens is None:
            max_new_tokens = getattr(self.language_model.config, "max_new_tokens", None) or 8
        return check_positive_int(label, max_new_tokens)

    def conditioning(self, prompts, negative, n: int, do_cfg: bool, *, transcription=None, max_new_tokens=None,
                     embeds: dict, labels: dict) -> tuple[dict, int]:
        """(UNet keyword tensors, prompts in the batch) for checked prompts or precomputed `embeds` (prompt_embeds
        with attention_mask and generated_prompt_embeds, and their negative_ counterparts, used as given)."""
        allowed = {"prompt_embeds", "negative_prompt_embeds", "generated_prompt_embeds",
                   "negative_generated_prompt_embeds", "attention_mask", "negative_attention_mask"}
        unknown = sorted(set(embeds) - allowed)
        if unknown:
            raise InvalidArgument(f"{unknown[0]}= is not an AudioLDM 2 argument")
        prompt_embeds, negative_prompt_embeds = embeds.get("prompt_embeds"), embeds.get("negative_prompt_embeds")
        if prompts is None and (prompt_embeds is None or embeds.get("generated_prompt_embeds") is None):
            raise InvalidArgument("give prompt=, or both prompt_embeds= and generated_prompt_embeds=")
        if prompts is not None and prompt_embeds is not None:
            raise InvalidArgument("give either prompt= or prompt_embeds=, not both")
        batch = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        transcriptions = self.check_transcription(transcription, batch, prompt_embeds is None,
                                                  labels.get("transcription", "transcription="))
        negative = check_negative(negative, batch)
        if negative is not None and negative_prompt_embeds is not None:
            raise InvalidArgument("give either negative_prompt= or negative_prompt_embeds=, not both")
        if negative_prompt_embeds is not None and embeds.get("negative_generated_prompt_embeds") is None:
            raise InvalidArgument("negative_prompt_embeds= needs negative_generated_prompt_embeds= too")
        max_new_tokens = self.check_max_new_tokens(max_new_tokens, labels.get("max_new_tokens", "max_new_tokens"))
        return self.encode_prompt(prompts, transcriptions, negative, n, do_cfg, max_new_tokens, prompt_embeds,
                                  negative_prompt_embeds, embeds.get("generated_prompt_embeds"),
                                  embeds.get("negative_generated_prompt_embeds"), embeds.get("attention_mask"),
                                  embeds.get("negative_attention_mask")), batch

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, transcription: str | list[str] | None = None,
                 audio_length_in_s: float | None = None, num_inference_steps: int = family_default(200),
                 guidance_scale: float = family_default(3.5), negative_prompt: str | list[str] | None = None,
                 num_waveforms_per_prompt: int = 1, eta: float = 0.0, generator=None,
                 latents: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt_embeds: torch.Tensor | None = None,
                 generated_prompt_embeds: torch.Tensor | None = None,
                 negative_generated_prompt_embeds: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, negative_attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int | None = None, return_dict: bool = True, callback=None, callback_steps: int = 1,
                 cross_attention_kwargs: dict | None = None, output_type: str = "np", *, seed: int | None = None,
                 sampler: str | None = None, sampler_options: dict | None = None, rank: bool = True, ranker=None,
                 progress: bool | None = None, loudness: float | None = None):
        """Generate audio (or speech, with `transcription` on a TTS checkpoint) from text, with the arguments and
        defaults of diffusers' AudioLDM2Pipeline (200 steps, guidance 3.5 — or the model folder's soundsmith.json —
        and 10.24 s). Lengths above pipe.long_form.above_seconds (20.48 s) are made in overlapping windows and
        decoded in chunks (longform.py).

        Beyond AudioLDMPipeline's arguments (see soundsmith.AudioLDM): transcription — the words to speak (TTS
        checkpoints); prompt_embeds / attention_mask — T5 (or VITS) states and mask; generated_prompt_embeds — GPT-2
        states (both needed when prompt is None); max_new_tokens — GPT-2 states to generate (default: the
        language model config's, 8; speech checkpoints want 512). With num_waveforms_per_prompt > 1 each prompt's
        candidates are ranked best first by CLAP (rank=False keeps generation order). progress and loudness: as
        AudioLDMPipeline's.
        A thin adapter: the arguments become a soundsmith.Request, run by soundsmith.engine.
        """
        request = Request(prompt=prompt, transcription=transcription, negative_prompt=negative_prompt,
                          duration=audio_length_in_s, steps=given(num_inference_steps),
                          guidance=given(guidance_scale),
                          candidates=num_waveforms_per_prompt, eta=eta, seed=seed, sampler=sampler,
                          sampler_options=sampler_options, rank=rank, max_new_tokens=max_new_tokens,
                          loudness=loudness, _labels=PYTHON_LABELS)
        embeds = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds,
                  "generated_prompt_embeds": generated_prompt_embeds,
                  "negative_generated_prompt_embeds": negative_generated_prompt_embeds,
                  "attention_mask": attention_mask, "negative_attention_mask": negative_attention_mask}
        return engine.run(self, request, generator=generator, latents=latents,
                          embeds={k: v for k, v in embeds.items() if v is not None}, callback=callback,
                          callback_steps=callback_steps, cross_attention_kwargs=cross_attention_kwargs,
                          output_type=output_type, return_dict=return_dict, progress=self.show_progress if progress is None else progress,
                          ranker=ranker)
