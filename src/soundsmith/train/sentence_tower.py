"""The demo's text tower: the sentence encoder the UNet was conditioned on (all-MiniLM-L6-v2, a 6-layer BERT),
rewritten exactly as a CLAP text tower, so that the pipeline folder stays diffusers' AudioLDM layout
(`ClapTextModelWithProjection` + a `BertTokenizer`) and a prompt reaches the UNet as the teacher itself places it.

What the UNet was trained on (`train unet --conditioning teacher`): BERT's last hidden states (B, L, 384) → their
mean over the attention mask → unit vector → @ projection P (384, 128) → unit vector. What CLAP's text tower
computes: RoBERTa-style embeddings (positions counted from pad + 1) → layers → pooler (dense + tanh of the first
token) → projection (linear, ReLU, linear) → the pipeline normalises. The mapping, each piece exact or nearly so:

- embeddings and the six layers are copied; pad_token_id is BERT's [PAD] (0), so positions start at 1 and the
  position table is BERT's shifted down a row (row 0, the padding position, stays zero); one token type row (0);
  layer norm eps 1e-12, GELU, as BERT.
- a seventh layer mean-pools into the first token. Its query weights are zero, so every attention score is 0 and
  the softmax is uniform over the unmasked tokens: each token's attention output is the masked mean of the values —
  the teacher's pooling, [CLS] and [SEP] included as the teacher includes them. The value weights are the identity
  and the output weights `gain · [Pᵀ; −Pᵀ; 0]`: the projected vector and its negative, so the vector's mean over
  features is exactly zero and the layer norm after the residual only rescales it (a positive factor that the final
  normalisation removes). `gain` drowns the residual (the first token's own state) to ~1/gain of the sum. The
  feed-forward is zero, so its layer norm sees an already normalised vector and returns it.
- pooler: dense = ε on the first 128 coordinates; tanh(εx) = εx to a relative (εx)²/3 (x ~ 1, ε = 0.01: 3e-5).
- projection: linear1 = I/ε with bias 1/ε (tanh ≤ 1 keeps the ReLU's input ≥ 0, so the ReLU passes everything),
  linear2 = I with bias −1/ε.
Cosine to the teacher's projected vector: > 0.9999 in float32, and with the weights stored in float16.
"""

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from .demo import TOKENIZER_CLASS, readme

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
GAIN = 1000.0
EPSILON = 0.01


def tower_config(teacher: dict, projection_dim: int, max_tokens: int = MAX_TOKENS):
    """ClapTextConfig of the tower for a BERT config.json dict: one layer more than the teacher (the pooling one)."""
    from transformers import ClapTextConfig

    return ClapTextConfig(
        vocab_size=teacher["vocab_size"], hidden_size=teacher["hidden_size"],
        num_hidden_layers=teacher["num_hidden_layers"] + 1, num_attention_heads=teacher["num_attention_heads"],
        intermediate_size=teacher["intermediate_size"], hidden_act=teacher["hidden_act"],
        max_position_embeddings=max_tokens + 1, type_vocab_size=1, layer_norm_eps=teacher["layer_norm_eps"],
        pad_token_id=teacher["pad_token_id"], bos_token_id=None, eos_token_id=None,
        projection_dim=projection_dim, projection_hidden_act="relu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0)


def build(teacher_folder: Path, projection: torch.Tensor, max_tokens: int = MAX_TOKENS, gain: float = GAIN,
          epsilon: float = EPSILON):
    """The teacher's BERT folder (config.json, model.safetensors) and P (384, D) → ClapTextModelWithProjection,
    float32, eval, whose normalised text_embeds are normalize(normalize(mean-pooled BERT states) @ P)."""
    from safetensors.torch import load_file
    from transformers import ClapTextModelWithProjection

    from ..errors import CheckpointError

    teacher_folder = Path(teacher_folder)
    bert = json.loads((teacher_folder / "config.json").read_text())
    if bert.get("model_type") != "bert" or bert.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{teacher_folder}: the sentence tower needs a BERT with absolute positions "
                              f"(model_type {bert.get('model_type')!r})")
    width, dim = bert["hidden_size"], projection.shape[1]
    if projection.shape[0] != width or 2 * dim > width:
        raise CheckpointError(f"projection of shape {tuple(projection.shape)}: needs ({width}, D) with 2·D ≤ {width}")
    if max_tokens > bert["max_position_embeddings"]:
        raise CheckpointError(f"max_tokens {max_tokens}: the teacher has {bert['max_position_embeddings']} positions")
    source = {k.removeprefix("bert."): v.float() for k, v in load_file(teacher_folder / "model.safetensors").items()}
    config = tower_config(bert, dim, max_tokens)
    model = ClapTextModelWithProjection(config)
    state = model.state_dict()
    for key, value in source.items():
        if key.startswith("encoder.layer.") or key.startswith("embeddings.LayerNorm.") or key == \
                "embeddings.word_embeddings.weight":
            state[f"text_model.{key}"] = value
    positions = torch.zeros(max_tokens + 1, width)
    positions[1:] = source["embeddings.position_embeddings.weight"][:max_tokens]
    state["text_model.embeddings.position_embeddings.weight"] = positions
    state["text_model.embeddings.token_type_embeddings.weight"] = source["embeddings.token_type_embeddings.weight"][:1]

    pool = pool_layer(bert["num_hidden_layers"] + 1)
    carry = torch.zeros(width, width)
    carry[:dim], carry[dim:2 * dim] = projection.T.float(), -projection.T.float()
    for name in ("attention.self.query", "attention.self.key", "intermediate.dense", "output.dense"):
        state[pool + name + ".weight"] = torch.zeros_like(state[pool + name + ".weight"])
        state[pool + name + ".bias"] = torch.zeros_like(state[pool + name + ".bias"])
    state[pool + "attention.self.value.weight"] = torch.eye(width)
    state[pool + "attention.self.value.bias"] = torch.zeros(width)
    state[pool + "attention.output.dense.weight"] = gain * carry
    state[pool + "attention.output.dense.bias"] = torch.zeros(width)
    for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
        state[pool + norm + ".weight"], state[pool + norm + ".bias"] = torch.ones(width), torch.zeros(width)

    select = torch.zeros(width, width)
    select[range(dim), range(dim)] = epsilon
    state["text_model.pooler.dense.weight"], state["text_model.pooler.dense.bias"] = select, torch.zeros(width)
    state["text_projection.linear1.weight"] = torch.eye(dim, width) / epsilon
    state["text_projection.linear1.bias"] = torch.full((dim,), 1 / epsilon)
    state["text_projection.linear2.weight"] = torch.eye(dim)
    state["text_projection.linear2.bias"] = torch.full((dim,), -1 / epsilon)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def pool_layer(tower_layers: int) -> str:
    """The state-dict key prefix of the pooling layer that `build` adds: the last of the tower's `tower_layers`."""
    return f"text_model.encoder.layer.{tower_layers - 1}."


def read_projection(text_encoder: Path, gain: float = GAIN) -> torch.Tensor:
    """P (D_teacher, D) read back out of a tower that `build` made and `save` wrote (text_encoder/: config.json,
    model.safetensors): its pooling layer's output weights are gain · [Pᵀ; −Pᵀ; 0]. With float16 storage P comes
    back to float16's precision (relative 5e-4), which the normalised conditioning vectors carry unchanged to ~1e-3.
    A text encoder of another make (a distilled CLAP tower, a real checkpoint's RoBERTa) → CheckpointError."""
    from safetensors.torch import load_file

    from ..errors import CheckpointError

    folder = Path(text_encoder)
    files = [folder / "config.json", folder / "model.safetensors"]
    if not all(f.is_file() for f in files):
        raise CheckpointError(f"{folder}: no text tower here (it needs config.json and model.safetensors)")
    config = json.loads(files[0].read_text())
    state = load_file(files[1])
    pool = pool_layer(config.get("num_hidden_layers", 0))
    dim = config.get("projection_dim", 0)
    found = [state.get(pool + name) for name in ("attention.output.dense.weight", "attention.self.query.weight",
                                                 "attention.self.value.weight")]
    weight, query, value = (None if t is None else t.float() for t in found)
    built = (value is not None and query is not None and weight is not None and 0 < 2 * dim <= weight.shape[0]
             and not query.any() and torch.equal(value, torch.eye(value.shape[0]))
             and torch.equal(weight[dim:2 * dim], -weight[:dim]) and not weight[2 * dim:].any())
    if not built:
        raise CheckpointError(f"{folder}: this text tower was not built by `soundsmith train tower` (its last layer "
                              f"is not a mean-pooling layer carrying a projection), so no projection can be read "
                              f"from it: give the folder with the projection.pt its text stage wrote")
    return weight[:dim].T / gain


def tokenizer(teacher_folder: Path, max_tokens: int = MAX_TOKENS):
    """The teacher's WordPiece tokenizer (lower-casing, [CLS] … [SEP], [PAD] = 0), `max_tokens` long."""
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(teacher_folder, model_max_length=max_tokens)


def save(model, tok, folder: Path, dtype: torch.dtype = torch.float16) -> Path:
    """folder/text_encoder (weights in `dtype`) and folder/tokenizer (tokenizer.json and vocab.txt, which both
    transformers 4's Python tokenizer and 5's read)."""
    folder = Path(folder)
    model.to(dtype).save_pretrained(folder / "text_encoder", safe_serialization=True)
    model.float()
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:  # the teacher's tokenizer.json pads and truncates to 128 by itself: callers decide
        backend.no_truncation()
        backend.no_padding()
    tok.save_pretrained(folder / "tokenizer")
    vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise ValueError("the tokenizer's ids are not 0 … N−1: it cannot be written as a vocab.txt")
    (folder / "tokenizer" / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    for junk in folder.rglob("generation_config.json"):
        junk.unlink()
    return folder


def install(model, tok, pipeline: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Swap the tower into an AudioLDM pipeline folder in place: text_encoder/, tokenizer/ and model_index.json's
    tokenizer class, each replaced whole (written beside, then renamed over)."""
    pipeline = Path(pipeline)
    staging = pipeline / ".sentence-tower.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    save(model, tok, staging, dtype)
    for name in ("text_encoder", "tokenizer"):
        old = pipeline / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if (pipeline / name).exists():
            (pipeline / name).rename(old)
        (staging / name).rename(pipeline / name)
        shutil.rmtree(old, ignore_errors=True)
    staging.rmdir()
    index_file = pipeline / "model_index.json"
    index = json.loads(index_file.read_text())
    index["tokenizer"] = ["transformers", TOKENIZER_CLASS]
    tmp = pipeline / f".model_index.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, index_file)
    if (pipeline / "vocoder" / "config.json").exists() and (pipeline / "unet" / "config.json").exists():
        _rewrite_readme(pipeline)
    return pipeline


def _rewrite_readme(pipeline: Path) -> None:
    """The pipeline's README.md (train.demo.readme) naming the sentence tower as its text encoder."""
    import math

    unet = json.loads((pipeline / "unet" / "config.json").read_text())
    vocoder = json.loads((pipeline / "vocoder" / "config.json").read_text())
    factor = 2 ** (len(json.loads((pipeline / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    seconds = unet["sample_size"] * factor * math.prod(vocoder["upsample_rates"]) / vocoder["sampling_rate"]
    tmp = pipeline / f".README.{os.getpid()}.tmp"
    tmp.write_text(readme(seconds, sentence_tower=True))
    os.replace(tmp, pipeline / "README.md")


@torch.no_grad()
def embed(model, tok, texts: list[str], batch: int = 256) -> torch.Tensor:
    """(N,) texts → (N, D) unit vectors, as the pipeline computes them (models.conditioning.clap_text_embeds)."""
    from ..models.conditioning import clap_text_embeds

    return torch.cat([clap_text_embeds(model, tok, texts[i:i + batch], tok.model_max_length)
                      for i in range(0, len(texts), batch)])


def recover_projection(teacher_folder: Path, captions: list[str], pipeline: Path) -> torch.Tensor:
    """The projection a `train clap --text-from` stage built for these training captions (the principal axes of the
    teacher's caption and vocabulary-sentence vectors, clap.principal_axes), with each axis's sign — arbitrary in the
    decomposition — set to agree with the text tower of `pipeline`, which was distilled onto it and so is the only
    record of the signs the UNet was trained with. → (D_teacher, dim)."""
    from transformers import AutoTokenizer, ClapTextModelWithProjection

    from . import clap

    tower = ClapTextModelWithProjection.from_pretrained(Path(pipeline) / "text_encoder").float().eval()
    teacher = clap.prepare_teacher(Path(teacher_folder), captions, progress=False)
    projection = clap.principal_axes(torch.cat([teacher["captions"], teacher["word_embeds"]]).float(),
                                     tower.config.projection_dim)
    first = {c: i for i, c in reversed(list(enumerate(captions)))}
    unique = sorted(first)
    targets = teacher["captions"][[first[c] for c in unique]].float() @ projection
    current = embed(tower, AutoTokenizer.from_pretrained(Path(pipeline) / "tokenizer"), unique)
    agreement = (F.normalize(targets, dim=-1) * current).sum(0)
    return projection * torch.sign(agreement)
