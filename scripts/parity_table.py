"""Print the parity table: every case the tests check, with the measured relative error of soundsmith's mel and
waveform against diffusers on the same folder and latents (markdown, for docs/parity.md).

    .venv/bin/python scripts/parity_table.py            # tiny pipelines (about a minute)
    .venv/bin/python scripts/parity_table.py --full     # plus the full-size random-weight folders (slow)
"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from checkpoints import build_audioldm, build_audioldm2, build_musicldm  # noqa: E402
from parity import compare  # noqa: E402

PROMPT = "A hammer hitting a wooden surface"


def gen(seed):
    return torch.Generator().manual_seed(seed)


def cases(root: Path, full: bool):
    a = build_audioldm(root / "a")
    legacy = build_audioldm(root / "al", legacy_vae_keys=True)
    a512 = build_audioldm(root / "a512", clap_max_length=512)
    m = build_musicldm(root / "m")
    a2 = {v: build_audioldm2(root / f"a2-{v}", variant=v) for v in ("base", "large", "gpt2model", "tts")}
    from diffusers import DPMSolverMultistepScheduler

    embeds = torch.nn.functional.normalize(torch.randn(2, 8, generator=gen(5)), dim=-1)
    yield "AudioLDM", "default settings (DDIM, 2 steps)", a, dict(prompt=PROMPT, num_inference_steps=2,
                                                                   generator=gen(0))
    yield "AudioLDM", "negative prompt", a, dict(prompt=PROMPT, negative_prompt="egg cracking",
                                                 num_inference_steps=2, generator=gen(0))
    yield "AudioLDM", "2 prompts × 2 waveforms", a, dict(prompt=[PROMPT, "a dog"], num_waveforms_per_prompt=2,
                                                         num_inference_steps=2, generator=gen(3))
    yield "AudioLDM", "prompt_embeds given", a, dict(prompt_embeds=embeds, num_inference_steps=2, generator=gen(1))
    yield "AudioLDM", "DDIM eta 0.7 with a generator", a, dict(prompt=PROMPT, eta=0.7, num_inference_steps=4,
                                                               generator=gen(11))
    yield "AudioLDM", "length 2.5 s", a, dict(prompt=PROMPT, audio_length_in_s=2.5, num_inference_steps=2,
                                              generator=gen(2))
    yield "AudioLDM", "length 3.3 s (rounded up)", a, dict(prompt=PROMPT, audio_length_in_s=3.3,
                                                           num_inference_steps=2, generator=gen(2))
    yield "AudioLDM", "DPM-Solver++ 2M, 5 steps", a, dict(prompt=PROMPT, num_inference_steps=5, generator=gen(0),
                                                          reference_scheduler=DPMSolverMultistepScheduler,
                                                          sampler="dpmpp-2m")
    yield "AudioLDM", "old-style VAE key names", legacy, dict(prompt=PROMPT, num_inference_steps=2, generator=gen(0))
    yield "AudioLDM", "512-token CLAP tokenizer, 2 negatives", a512, dict(
        prompt=[PROMPT, "egg"], negative_prompt=["low quality", "noise"], num_inference_steps=2, generator=gen(9))
    for name, folder in [("base", a2["base"]), ("large-style UNet", a2["large"]),
                         ("GPT2Model-saved LM", a2["gpt2model"])]:
        yield "AudioLDM 2", name, folder, dict(prompt=PROMPT, num_inference_steps=2, generator=gen(0))
        yield "AudioLDM 2", f"{name}, negative prompt", folder, dict(prompt=PROMPT, negative_prompt="egg cracking",
                                                                      num_inference_steps=2, generator=gen(1))
        yield "AudioLDM 2", f"{name}, 2 prompts × 2 waveforms", folder, dict(
            prompt=[PROMPT, "a dog barks"], negative_prompt=["egg cracking", "Low quality."],
            num_waveforms_per_prompt=2, num_inference_steps=2, generator=gen(2), ours_kwargs={"rank": False})
    for negative in (None, "egg cracking"):
        yield "AudioLDM 2", f"TTS{', negative prompt' if negative else ''}", a2["tts"], dict(
            prompt="A men saying", transcription="hello my name is john", negative_prompt=negative,
            num_inference_steps=2, generator=gen(5))
        yield "MusicLDM", "negative prompt" if negative else "default settings", m, dict(
            prompt=PROMPT, negative_prompt=negative, num_inference_steps=2, generator=gen(0))
    if full:
        root_full = Path("~/.cache/soundsmith/random-checkpoints").expanduser()
        for name in ("audioldm-s-full-v2", "audioldm-l-full", "audioldm2", "musicldm"):
            yield "full size", f"{name}, 1 s, negative prompt, 2 steps", root_full / name, dict(
                prompt=PROMPT, negative_prompt="low quality", num_inference_steps=2, audio_length_in_s=1.0,
                latents_shape=(1, 8, 25, 16))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="include the full-size random-weight folders")
    args = parser.parse_args()
    print("| family | case | mel rel. error | waveform rel. error |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family, case, folder, kwargs in cases(Path(tmp), args.full):
            result = compare(folder, **kwargs)
            print(f"| {family} | {case} | {result['mel']:.1e} | {result['waveform']:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
