"""Training data: synthesis, manifests, held-out eval prompts and the adherence classifier (no real training)."""

import json
import re
from collections import Counter

import numpy as np
import pytest
import soundfile
import torch

from soundsmith.data import kinds
from soundsmith.data.eval_prompts import ALL_CATEGORIES, CATEGORIES, EVAL_PROMPTS, VALIDATION_PROMPTS
from soundsmith.data.manifest import ManifestError, load_audio, read_manifest
from soundsmith.data.sources import missing

MISSING = missing()
needs_synth_deps = pytest.mark.skipif(
    bool(MISSING), reason=f"Debian packages {', '.join(MISSING)} not installed (run scripts/install-data-deps)")


# ---------------------------------------------------------------------------------------------- synthesis


@pytest.fixture(scope="module")
def ten_clips(tmp_path_factory):
    from soundsmith.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "ten"
    manifest = synthesize(out, 10, seed=7, sample_rate=16000, seconds=2.0, jobs=1, progress=False)
    return out, manifest


@needs_synth_deps
def test_synthesize_ten_clips_writes_16_bit_mono_wavs_and_a_manifest(ten_clips):
    out, manifest = ten_clips
    lines = manifest.read_text().splitlines()
    assert len(lines) == 10
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"wav", "caption", "category", "source", "licence"}
        assert record["category"] in ALL_CATEGORIES and record["caption"] and record["licence"]
        info = soundfile.info(str(out / record["wav"]))
        assert (info.subtype, info.channels, info.samplerate, info.frames) == ("PCM_16", 1, 16000, 32000)
        data, _ = soundfile.read(str(out / record["wav"]))
        assert 10 ** (-13 / 20) < np.abs(data).max() < 10 ** (-0.9 / 20)  # peak-normalised to -12 … -1 dBFS
    items = read_manifest(manifest)
    assert [i.wav for i in items] == [out / json.loads(line)["wav"] for line in lines]


@needs_synth_deps
def test_synthesis_is_deterministic_for_a_seed_and_resumes(ten_clips, tmp_path):
    from soundsmith.data.synth import synthesize

    out, manifest = ten_clips
    again = synthesize(tmp_path / "again", 10, seed=7, sample_rate=16000, seconds=2.0, jobs=2, progress=False)
    assert again.read_text() == manifest.read_text()
    for line in manifest.read_text().splitlines():
        wav = json.loads(line)["wav"]
        assert (tmp_path / "again" / wav).read_bytes() == (out / wav).read_bytes(), wav
    # an interrupted run: a missing clip is made again, identical; the others are kept
    first = tmp_path / "again" / json.loads(manifest.read_text().splitlines()[3])["wav"]
    expected = first.read_bytes()
    first.unlink()
    synthesize(tmp_path / "again", 10, seed=7, sample_rate=16000, seconds=2.0, jobs=1, progress=False)
    assert first.read_bytes() == expected
    other = synthesize(tmp_path / "other", 10, seed=8, sample_rate=16000, seconds=2.0, jobs=1, progress=False)
    assert other.read_text() != manifest.read_text()


@needs_synth_deps
def test_synthesis_refuses_a_folder_made_with_other_settings(ten_clips):
    from soundsmith.errors import InvalidArgument
    from soundsmith.data.synth import synthesize

    out, _ = ten_clips
    with pytest.raises(InvalidArgument, match="sample_rate=16000"):
        synthesize(out, 10, seed=7, sample_rate=22050, seconds=2.0, jobs=1, progress=False)


@pytest.fixture(scope="module")
def plans():
    if MISSING:
        pytest.skip(f"Debian packages {', '.join(MISSING)} not installed (run scripts/install-data-deps)")
    return [kinds.plan(0, i, 5.0) for i in range(20000)]


def test_plans_cover_every_category_in_the_intended_mix(plans):
    shares = {c: k / len(plans) for c, k in Counter(p["category"] for p in plans).items()}
    assert set(shares) == set(ALL_CATEGORIES)
    for category in CATEGORIES:
        assert 0.05 < shares[category] < 0.2, (category, shares[category])
    assert {p["kind"] for p in plans} == set(kinds.RENDER)


def test_captions_vary_within_each_category(plans):
    captions = [p["caption"] for p in plans]
    assert len(set(captions)) > 0.5 * len(captions)
    for category in ALL_CATEGORIES:
        own = {p["caption"] for p in plans if p["category"] == category}
        starts = {" ".join(c.split()[:2]) for c in own}
        assert len(own) > 100 and len(starts) > 10, category
    assert any(c.startswith("a female voice saying: ") for c in captions)
    assert any(re.fullmatch(r"a waltz drum beat at \d+ beats per minute", c) for c in captions)
    assert any(c.endswith("with rain in the background") for c in captions)


def test_eval_prompts_are_held_out_from_training_captions(plans):
    assert len(EVAL_PROMPTS) >= 8 and set(EVAL_PROMPTS) == set(CATEGORIES)
    assert all(len(prompts) >= 5 for prompts in EVAL_PROMPTS.values())

    def words(text):
        return re.sub(r"[^a-z0-9' -]", " ", text.lower()).split()

    captions = {p["caption"].lower() for p in plans}
    four_grams = {tuple(w[i:i + 4]) for c in captions for w in [words(c)] for i in range(len(w) - 3)}
    assert set(VALIDATION_PROMPTS) == set(CATEGORIES)
    test = {p for prompts in EVAL_PROMPTS.values() for p in prompts}
    assert not test & {p for prompts in VALIDATION_PROMPTS.values() for p in prompts}
    for prompts in list(EVAL_PROMPTS.values()) + list(VALIDATION_PROMPTS.values()):
        for prompt in prompts:
            assert not any(prompt.lower() in c for c in captions), prompt
            w = words(prompt)
            shared = [g for g in zip(w, w[1:], w[2:], w[3:]) if g in four_grams]
            assert not shared, (prompt, shared)


def test_plan_depends_only_on_seed_and_index(plans):
    assert kinds.plan(0, 123, 5.0) == plans[123]
    assert kinds.plan(1, 123, 5.0) != plans[123]


# ---------------------------------------------------------------------------------------------- manifests


def _wav(path, seconds=0.5, rate=16000):
    soundfile.write(str(path), np.zeros(int(seconds * rate)) + 0.1, rate, subtype="PCM_16")
    return path


def test_read_manifest_resolves_paths_relative_to_the_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    _wav(tmp_path / "a" / "x.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"wav": "a/x.wav", "caption": " a tone ", "category": "other", "extra": 3}\n\n')
    (item,) = read_manifest(manifest)
    assert (item.wav, item.caption, item.category, item.line, item.extra) == (tmp_path / "a/x.wav", "a tone",
                                                                              "other", 1, {"extra": 3})
    assert load_audio(item, 8000).shape == (4000,)


@pytest.mark.parametrize("text, message", [
    ("", r"m\.jsonl: empty manifest"),
    ("\n  \n", r"m\.jsonl: empty manifest"),
    ('{"wav": "x.wav", "caption": "a"}\n{"wav": "x.wav", "caption": \n', r"m\.jsonl line 2: malformed JSON"),
    ('["x.wav", "a"]\n', r"m\.jsonl line 1: expected a JSON object"),
    ('{"wav": "x.wav"}\n', r"m\.jsonl line 1: 'caption' must be a non-empty string \(missing\)"),
    ('{"wav": "x.wav", "caption": "a", "category": 3}\n', r"line 1: 'category' must be a string or null"),
    ('{"wav": "x.wav", "caption": "a"}\n{"wav": "gone.wav", "caption": "b"}\n',
     r"m\.jsonl line 2: audio file .*gone\.wav does not exist"),
    ('{"wav": "bad.wav", "caption": "a"}\n', r"m\.jsonl line 1: unreadable audio .*bad\.wav"),
])
def test_bad_manifests_fail_with_one_line_naming_file_and_line(tmp_path, text, message):
    _wav(tmp_path / "x.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message) as error:
        read_manifest(manifest)
    assert "\n" not in str(error.value)


def test_missing_manifest_and_corrupt_audio_behind_a_good_header(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "none.jsonl")
    wav = _wav(tmp_path / "cut.wav", seconds=1.0)
    wav.write_bytes(wav.read_bytes()[:1000])  # header claims a second, the data stops early
    (tmp_path / "m.jsonl").write_text('{"wav": "cut.wav", "caption": "a"}\n')
    (item,) = read_manifest(tmp_path / "m.jsonl")
    audio = load_audio(item, 16000)  # libsndfile reads what is there
    assert 0 < len(audio) < 16000


def test_cli_prints_one_line_and_exits_2_on_an_empty_manifest(tmp_path, capsys):
    from soundsmith.cli import main

    (tmp_path / "m.jsonl").write_text("")
    assert main(["data", "classifier", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "m.jsonl: empty manifest" in err


# --------------------------------------------------------------------------------------------- classifier


def test_classifier_training_steps_lower_the_loss_and_it_round_trips(tmp_path):
    from soundsmith.eval.classify import Classifier, classify, fit, load_classifier, mel_of, save_classifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    t = torch.arange(16000) / 16000
    waves, labels = [], []
    for k in range(16):  # tones ("bell") against noise ("water")
        if k % 2:
            waves.append(torch.sin(2 * torch.pi * float(rng.uniform(300, 2000)) * t) * torch.exp(-3 * t))
        else:
            waves.append(torch.from_numpy(rng.standard_normal(16000).astype(np.float32)) * 0.3)
        labels.append(ALL_CATEGORIES.index("bell" if k % 2 else "water"))
    mels = [mel_of(w) for w in waves]
    model = Classifier()
    losses = fit(model, mels, torch.tensor(labels), epochs=6, batch_size=8, lr=3e-3)
    assert losses[-1] < 0.7 * losses[0]
    save_classifier(model, tmp_path / "c.pt")
    loaded = load_classifier(tmp_path / "c.pt")
    paths = []
    for k in (0, 1):
        soundfile.write(str(tmp_path / f"{k}.wav"), waves[k].numpy(), 16000)
        paths.append(tmp_path / f"{k}.wav")
    assert classify(paths, loaded) == classify(paths, model)
    assert all(c in ALL_CATEGORIES for c in classify(paths, tmp_path / "c.pt"))


def _tones_and_noise(n: int, seconds: float = 1.0, seed: int = 0):
    """n waveforms at 16 kHz alternating decaying tones ("bell", odd k) and noise ("water", even k), each at a random
    level over 30 dB."""
    rng = np.random.default_rng(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    waves, labels = [], []
    for k in range(n):
        gain = 10 ** (float(rng.uniform(-30, 0)) / 20)
        if k % 2:
            waves.append(gain * torch.sin(2 * torch.pi * float(rng.uniform(300, 2000)) * t) * torch.exp(-3 * t))
        else:
            waves.append(gain * 0.3 * torch.from_numpy(rng.standard_normal(len(t)).astype(np.float32)))
        labels.append("bell" if k % 2 else "water")
    return waves, labels


def _labelled_manifest(tmp_path, waves, labels, rate: int = 16000):
    """The 16 kHz waveforms written as wavs at `rate` with a manifest whose caption and category are the label."""
    from soundsmith.audio import resample

    rows = []
    for k, (wave, label) in enumerate(zip(waves, labels)):
        soundfile.write(str(tmp_path / f"{k}.wav"), resample(wave, 16000, rate).numpy(), rate)
        rows.append({"wav": f"{k}.wav", "caption": label, "category": label})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_logistic_classifier_separates_held_out_clips_and_round_trips_as_a_second_kind(tmp_path):
    from soundsmith.eval import statistics
    from soundsmith.eval.classify import evaluate, load_classifier, mel_of, predict, save_classifier

    waves, labels = _tones_and_noise(24)
    mels = [mel_of(w) for w in waves]
    model = statistics.LogisticClassifier()
    statistics.fit(model, mels[:16], torch.tensor([ALL_CATEGORIES.index(c) for c in labels[:16]]))
    assert evaluate(model, mels[16:], labels[16:])["accuracy"] == 1.0
    save_classifier(model, tmp_path / "logistic.pt")
    loaded = load_classifier(tmp_path / "logistic.pt")
    assert isinstance(loaded, statistics.LogisticClassifier) and predict(loaded, mels) == predict(model, mels)


def test_logistic_features_ignore_the_level_and_see_the_modulation():
    from soundsmith.eval.classify import mel_of
    from soundsmith.eval.statistics import FEATURES, features

    t = torch.arange(32000) / 16000
    mel = mel_of(torch.sin(2 * torch.pi * 440 * t) * torch.exp(-t))
    gained = features(mel + 3.0)  # a gain of 26 dB is a constant in the log domain
    assert gained.shape == (FEATURES,) and torch.allclose(features(mel), gained, atol=1e-4)
    steady = features(torch.log(torch.full((200, 64), 0.1)) + 0.01 * torch.randn(200, 64))
    beating = features(torch.log(0.1 + 0.09 * torch.sin(2 * torch.pi * 4 * torch.arange(200) / 100))[:, None]
                       .expand(200, 64).clone())
    octave_4hz = 5 * 64 + 2  # after 5 per-band statistics, group 0's modulation octaves: the 3rd is 3.1–6.25 Hz
    assert beating[octave_4hz] > steady[octave_4hz] + 1.0


def test_knn_vote_takes_the_majority_of_the_nearest_bank_rows():
    from soundsmith.eval.text import knn_vote, vote_accuracy

    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9]])
    categories = ["piano", "piano", "drums", "drums", "drums"]
    assert knn_vote(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), bank, categories, k=3) == ["piano", "drums"]
    accuracy, per = vote_accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), ["drums", "drums"], bank, categories, k=3)
    assert accuracy == 0.5 and per == {"drums": (1, 2)}


def test_a_classifier_can_also_learn_from_vocoder_resynthesised_copies(tmp_path, tiny_vocoder):
    """--resynthesized N: copies of N training clips (never held-out ones) after analysis and resynthesis by a
    vocoder join the training set, so the codec's texture does not decide a category."""
    from soundsmith.eval.classify import mel_of, resynthesized_mels, train_classifier

    waves, labels = _tones_and_noise(8)
    manifest = _labelled_manifest(tmp_path, waves, labels, rate=22050)
    folder = tiny_vocoder

    items = read_manifest(manifest)[:2]
    copies = resynthesized_mels(items, folder, progress=False)
    for item, copy in zip(items, copies):
        original = mel_of(load_audio(item, 16000))
        assert copy.dtype == torch.float16 and copy.shape[1] == 64 and abs(len(copy) - len(original)) <= 3
        assert (copy.float()[:len(original)] - original[:len(copy)]).abs().mean() > 0.1  # a random vocoder's copy

    report = train_classifier(manifest, tmp_path / "c.pt", holdout=0.25, jobs=1, progress=False, kind="logistic",
                              resynthesized=3, vocoder=folder)
    assert report["train_clips"] == 6 and report["resynthesized"] == 3 and 0 <= report["accuracy"] <= 1


def test_resynthesised_copies_can_pass_through_a_models_whole_codec(tmp_path, tiny_audioldm):
    """autoencoder=MODEL: each copy is what `soundsmith reconstruct -m MODEL` makes of the clip (its VAE's encoder
    and decoder, then its vocoder) — the path every clip the model generates leaves by — read as classifier input."""
    import soundsmith
    from soundsmith import edit
    from soundsmith.audio import resample
    from soundsmith.eval.classify import mel_of, resynthesized_mels, train_classifier

    waves, labels = _tones_and_noise(8)
    manifest = _labelled_manifest(tmp_path, waves, labels)

    items = read_manifest(manifest)[:2]
    copies = resynthesized_mels(items, progress=False, autoencoder=tiny_audioldm)
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    for item, copy in zip(items, copies):
        clip = load_audio(item, pipe.sample_rate)
        rebuilt = edit.reconstruct(pipe, clip.numpy(), sample_rate=pipe.sample_rate, progress=False).audios[0]
        expected = mel_of(resample(torch.from_numpy(rebuilt.copy()), pipe.sample_rate, 16000))
        assert copy.dtype == torch.float16 and torch.allclose(copy.float(), expected.half().float())
        assert (copy.float()[:len(expected)] - mel_of(load_audio(item, 16000))[:len(copy)]).abs().mean() > 0.1

    report = train_classifier(manifest, tmp_path / "c.pt", holdout=0.25, jobs=1, progress=False, kind="logistic",
                              resynthesized=3, autoencoder=tiny_audioldm)
    assert report["train_clips"] == 6 and report["resynthesized"] == 3 and 0 <= report["accuracy"] <= 1


def test_windows_are_each_clips_first_and_one_random_stretch_of_the_same_length():
    from soundsmith.eval.classify import windows

    long, short = torch.arange(500 * 64.0).reshape(500, 64), torch.zeros(200, 64)
    out, labels = windows([long, short], torch.tensor([3, 5]), 297, seed=1)
    assert labels.tolist() == [3, 3, 5] and [len(m) for m in out] == [297, 297, 200]
    assert torch.equal(out[0], long[:297])
    start = int(out[1][0, 0]) // 64
    assert torch.equal(out[1], long[start:start + 297])
    assert windows([long], torch.tensor([3]), 297, seed=1)[0][1].equal(out[1])  # seeded


def test_a_logistic_classifier_can_be_fitted_and_judged_on_windows_of_the_length_it_will_see(tmp_path, monkeypatch):
    """window=SECONDS: the regression's statistics depend on a clip's length, so it is fitted on windows of the
    length of the clips it will judge (each clip's first and a random one) and reported on held-out first windows."""
    from soundsmith.eval import classify, statistics

    waves, labels = _tones_and_noise(8, seconds=2.0)
    manifest = _labelled_manifest(tmp_path, waves, labels)
    seen = {}
    real_fit, real_evaluate = statistics.fit, classify.evaluate

    def fit(model, mels, labels):
        seen.update(fit=[len(m) for m in mels], labels=labels)
        return real_fit(model, mels, labels)

    def evaluate(model, mels, categories):
        seen.update(judged=[len(m) for m in mels])
        return real_evaluate(model, mels, categories)

    monkeypatch.setattr(statistics, "fit", fit)
    monkeypatch.setattr(classify, "evaluate", evaluate)
    report = classify.train_classifier(manifest, tmp_path / "c.pt", holdout=0.25, jobs=1, progress=False,
                                       kind="logistic", window=0.5)
    assert seen["fit"] == [50] * 12 and len(seen["labels"]) == 12 and seen["judged"] == [50, 50]
    assert report["train_clips"] == 6 and report["accuracy"] == 1.0


@pytest.mark.parametrize("flags, expected", [
    (["--vocoder", "v"], "--vocoder FOLDER needs --resynthesized N"),
    (["--resynthesized", "-1"], "--resynthesized -1: must be 0 or more"),
    (["--autoencoder", "demo"], "--autoencoder MODEL needs --resynthesized N"),
    (["--resynthesized", "2", "--autoencoder", "demo", "--vocoder", "v"], "give one"),
    (["--window", "3"], "--window 3: must be a positive, finite number of seconds, with --kind logistic only"),
    (["--kind", "logistic", "--window", "0"], "--window 0: must be a positive, finite number of seconds"),
    (["--kind", "logistic", "--window", "inf"], "--window inf: must be a positive, finite number of seconds"),
])
def test_resynthesis_flags_are_checked(tmp_path, capsys, flags, expected):
    from soundsmith.cli import main

    (tmp_path / "m.jsonl").write_text("")
    assert main(["data", "classifier", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "c.pt"), *flags]) != 0
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_holdout_split_is_the_classifiers_own_and_disjoint():
    """eval.classify.holdout_split: what train_classifier holds out (scripts/demo_behaviour.py's codec table reads only
    those clips): seeded, disjoint, the held-out share of the (possibly cut) list."""
    from soundsmith.eval.classify import holdout_split

    items = list(range(100))
    test, train = holdout_split(items)
    assert len(test) == 15 and len(train) == 85 and not set(test) & set(train) and set(test) | set(train) == set(items)
    assert holdout_split(items) == (test, train) and holdout_split(items, seed=1)[0] != test
    test, train = holdout_split(items, holdout=0.5, max_items=10)
    assert len(test) == 5 and len(train) == 5
