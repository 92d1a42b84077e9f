"""Build full-size random-weight checkpoints from the real AudioLDM / AudioLDM 2 / MusicLDM configurations.

No hub is reachable here, so benchmarks and full-size parity checks run on folders with the real architecture,
the real diffusers layout and random weights (reference/diffusers-spec.md §6; reference-baseline.md "Full-size
random pipelines"). Speed does not depend on the values of the weights.

    python scripts/build_random_checkpoints.py audioldm-s-full-v2 audioldm2 [--verify]
    python scripts/build_random_checkpoints.py musicldm --out /data/musicldm-random

Folders go to ~/.cache/soundsmith/random-checkpoints/<name> (or --out for a single name); a folder that already
holds a model_index.json is skipped (--force rebuilds). The build writes to <folder>.partial and renames it at
the end, so an interrupted build never looks finished. Sizes: audioldm-s-full-v2 1.7 GB, audioldm-l-full 3.9 GB,
audioldm2 4.5 GB, audioldm2-large 6.0 GB, musicldm 2.0 GB.

Weights: every matrix / conv kernel N(0, 0.02) (the HiFi-GAN vocoder N(0, 0.01), transformers' own init, so
waveforms stay small and finite), biases 0, norm weights 1, everything else as constructed (CLAP logit scales,
AudioLDM 2 SOS/EOS ones); one seeded generator per component, so rebuilding gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # checkpoints.py: tokenizers, folder layout, the diffusers oracle

import checkpoints  # noqa: E402

DEFAULT_ROOT = Path("~/.cache/soundsmith/random-checkpoints").expanduser()
MODEL_CHANNELS_S = [128, 256, 384, 640]

# name -> how to build it. Parameter counts (spec §6) are checked after construction.
SPECS = {
    "audioldm-s-full-v2": dict(
        family="audioldm", channels=MODEL_CHANNELS_S, sample_size=128, vae_scaling=0.9392935633659363,
        legacy_vae_keys=True,
        params=dict(unet=185_036_552, vae=55_376_873, vocoder=55_264_897, text_encoder=125_302_016),
    ),
    "audioldm-l-full": dict(
        family="audioldm", channels=[256, 512, 768, 1280], sample_size=128, vae_scaling=0.9654927849769592,
        legacy_vae_keys=True,
        params=dict(unet=739_139_080, vae=55_376_873, vocoder=55_264_897, text_encoder=125_302_016),
    ),
    "musicldm": dict(
        family="musicldm", channels=MODEL_CHANNELS_S, sample_size=256, vae_scaling=1.075324296951294,
        params=dict(unet=185_036_552, vae=55_376_873, vocoder=55_264_897, text_encoder=193_913_882),
    ),
    "audioldm2": dict(
        family="audioldm2", cross_attention_dim=[[None, 768, 1024]] * 4, transformer_layers_per_block=1,
        vae_scaling=0.4110932946205139,
        params=dict(unet=346_943_496, vae=55_376_873, vocoder=55_264_897, text_encoder=193_913_882,
                    text_encoder_2=341_231_104, language_model=124_439_808, projection_model=1_184_256),
    ),
    # audioldm2-large's VAE scaling factor is not published (spec §6.3): the base checkpoint's value stands in.
    "audioldm2-large": dict(
        family="audioldm2", cross_attention_dim=[[None, 768, 1024, None]] * 4, transformer_layers_per_block=2,
        vae_scaling=0.4110932946205139,
        params=dict(unet=718_012_296, vae=55_376_873, vocoder=55_264_897, text_encoder=193_913_882,
                    text_encoder_2=341_231_104, language_model=124_439_808, projection_model=1_184_256),
    ),
}
SEEDS = {"unet": 1, "vae": 2, "vocoder": 3, "text_encoder": 4, "text_encoder_2": 5, "language_model": 6,
         "projection_model": 7}
NORMS = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


# --------------------------------------------------------------------------------------------- components


def scheduler():
    """DDIM as shipped with every checkpoint (spec §1.5)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
                         timestep_spacing="leading")


def vae(scaling_factor: float, sample_size: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[128, 256, 512], layers_per_block=2,
        act_fn="silu", latent_channels=8, norm_num_groups=32, sample_size=sample_size, scaling_factor=scaling_factor,
    )


def vocoder():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5]] * 3, leaky_relu_slope=0.1, normalize_before=False,
        initializer_range=0.01,
    ))


def audioldm_unet(channels: list[int], sample_size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=8, out_channels=8,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
        up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"], block_out_channels=channels, layers_per_block=2,
        cross_attention_dim=channels, attention_head_dim=8, class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=512, class_embeddings_concat=True,
    )


def audioldm2_unet(cross_attention_dim: list, transformer_layers_per_block: int):
    from diffusers import AudioLDM2UNet2DConditionModel

    return AudioLDM2UNet2DConditionModel(
        sample_size=256, in_channels=8, out_channels=8,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
        up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"], block_out_channels=MODEL_CHANNELS_S,
        layers_per_block=2, cross_attention_dim=cross_attention_dim,
        transformer_layers_per_block=transformer_layers_per_block, attention_head_dim=8,
    )


def clap_text_model():
    """CLAP text tower + 512-d projection: ClapTextConfig() is laion/clap-htsat-unfused's text config."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    return ClapTextModelWithProjection(ClapTextConfig())


def clap_model():
    """Text tower as above + HTSAT-base audio tower (patch embeds 128, hidden 1024, depths [2,2,12,2])."""
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    audio = ClapAudioConfig(
        patch_embeds_hidden_size=128, hidden_size=1024, depths=[2, 2, 12, 2], num_attention_heads=[4, 8, 16, 32],
        window_size=8, spec_size=256, num_mel_bins=64, enable_fusion=False,
    )
    return ClapModel(ClapConfig(text_config=ClapTextConfig().to_dict(), audio_config=audio.to_dict(),
                                projection_dim=512))


def clap_feature_extractor():
    """laion/clap-htsat-unfused / cvssp/audioldm2 preprocessor config (spec §2.4)."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=10, fft_window_size=1024,
        frequency_min=50, frequency_max=14000, top_db=None, truncation="rand_trunc", padding="repeatpad",
    )


def flan_t5_large_encoder():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
        eos_token_id=1, decoder_start_token_id=0,
    ))


def gpt2_model():
    """GPT2Config() (gpt2 base) saved as GPT2Model with max_new_tokens 8, as on the hub."""
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config())
    model.config.max_new_tokens = 8
    return model


# ----------------------------------------------------------------------------------------------- weights


def fill_random(model: torch.nn.Module, seed: int, std: float) -> None:
    """Matrices / kernels N(0, std), biases 0, norm weights 1; anything else stays as constructed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            is_norm = isinstance(module, NORMS) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))
            for name, p in module.named_parameters(recurse=False):
                if is_norm:
                    p.fill_(1.0 if name == "weight" else 0.0)
                elif name == "bias":
                    p.zero_()
                elif p.dim() >= 2:
                    p.normal_(0.0, std, generator=generator)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------- build


def build(name: str, folder: Path) -> dict:
    """Build `name` into `folder`; returns {component: parameter count}."""
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDMPipeline, MusicLDMPipeline

    spec = SPECS[name]
    family = spec["family"]
    torch.manual_seed(0)
    models = {"vae": vae(spec["vae_scaling"], 512 if family == "audioldm" else 1024), "vocoder": vocoder()}
    if family == "audioldm2":
        models["unet"] = audioldm2_unet(spec["cross_attention_dim"], spec["transformer_layers_per_block"])
        models["text_encoder"] = clap_model()
        models["text_encoder_2"] = flan_t5_large_encoder()
        models["language_model"] = gpt2_model()
        models["projection_model"] = AudioLDM2ProjectionModel(512, 1024, 768)
    else:
        models["unet"] = audioldm_unet(spec["channels"], spec["sample_size"])
        models["text_encoder"] = clap_model() if family == "musicldm" else clap_text_model()
    for component, model in models.items():
        model.eval()
        fill_random(model, SEEDS[component], std=0.01 if component == "vocoder" else 0.02)
    counts = {component: count(model) for component, model in models.items()}
    for component, expected in spec["params"].items():
        if counts[component] != expected:
            raise RuntimeError(f"{name}: {component} has {counts[component]:,} parameters, the spec says {expected:,}")

    tokenizer = checkpoints.roberta_tokenizer(model_max_length=512, vocab_size=50265)
    spiece_model = None
    if family == "audioldm2":
        tokenizer_2, spiece_model = checkpoints.t5_tokenizer(model_max_length=128, pieces=32000)
        pipe = AudioLDM2Pipeline(**models, scheduler=scheduler(), tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                                 feature_extractor=clap_feature_extractor())
    elif family == "musicldm":
        pipe = MusicLDMPipeline(**models, scheduler=scheduler(), tokenizer=tokenizer,
                                feature_extractor=clap_feature_extractor())
    else:
        pipe = AudioLDMPipeline(**models, scheduler=scheduler(), tokenizer=tokenizer)
    checkpoints.save_pipeline(pipe, folder, spiece_model=spiece_model,
                              legacy_vae_keys=spec.get("legacy_vae_keys", False))
    return counts


def verify(folder: Path) -> str:
    """diffusers (tests/checkpoints.load_reference) loads the folder and generates 1 s in 2 steps."""
    import numpy as np

    start = time.perf_counter()
    pipe = checkpoints.load_reference(folder)
    loaded = time.perf_counter()
    audio = checkpoints.run_reference(pipe, "A hammer hitting a wooden surface", steps=2, audio_length_in_s=1.0)
    done = time.perf_counter()
    if audio.shape != (1, 16000) or not np.isfinite(audio).all():
        raise RuntimeError(f"{folder}: bad reference output {audio.shape}, finite={np.isfinite(audio).all()}")
    return (f"diffusers loads it in {loaded - start:.1f} s, 1 s of audio in 2 steps takes {done - loaded:.1f} s: "
            f"shape {audio.shape}, |x|max {np.abs(audio).max():.3g}")


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", choices=sorted(SPECS), metavar="name",
                        help=f"one or more of: {', '.join(sorted(SPECS))}")
    parser.add_argument("--out", type=Path, help="folder to build into (one name only); "
                        f"default {DEFAULT_ROOT}/<name>")
    parser.add_argument("--force", action="store_true", help="rebuild folders that already exist")
    parser.add_argument("--verify", action="store_true", help="then run diffusers on each folder (2 steps, 1 s)")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.names) != 1:
        parser.error("--out takes exactly one name")

    torch.set_grad_enabled(False)
    for name in args.names:
        folder = (args.out or DEFAULT_ROOT / name).expanduser()
        if (folder / "model_index.json").is_file() and not args.force:
            print(f"{name}: {folder} exists, skipped (--force rebuilds)")
        else:
            start = time.perf_counter()
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            counts = build(name, partial)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
            table = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in sorted(counts.items()))
            print(f"{name}: built {folder} in {time.perf_counter() - start:.1f} s, "
                  f"{folder_size(folder) / 1e9:.2f} GB; parameters {sum(counts.values()) / 1e6:.2f}M ({table})")
        if args.verify:
            print(f"{name}: {verify(folder)}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
