"""CLAP's text side without transformers: the byte-level BPE tokenizer and the RoBERTa text tower with its
projection, loaded from the folders transformers saves (`tokenizer/tokenizer.json`, `text_encoder/` of a
ClapTextModelWithProjection, the same state-dict names).

Why: in a fresh process, importing transformers' model code costs about 2.3 s on this project's 2-core CPU
(modeling_utils pulls in torch.distributed.tensor, torch._dynamo, sympy and, where installed, scipy), more than the
bundled demo takes to make a sound; AudioLDM and the demo need nothing else from transformers. The arithmetic is
transformers' ClapTextModel (RoBERTa: Liu et al. 2019) and ClapProjectionLayer (Wu et al. 2023, LAION-CLAP):

    embeddings  = LayerNorm(word[ids] + position[p] + token_type[0]),  p = padding_idx + 1 + index of each real token
    each layer  : h = LayerNorm(h + dense(attention(h)));  h = LayerNorm(h + dense(act(dense(h))))
    pooled      = tanh(dense(h[:, 0]))
    projection  = linear2(act(linear1(pooled)))

Shapes: ids and mask (B, L) int64; hidden states (B, L, hidden_size); pooled (B, hidden_size); projection
(B, projection_dim).
"""

import json
import threading
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import configs
from ..errors import CheckpointError

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu, "tanh": torch.tanh,
               "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
               "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}
BUFFERS = ("text_model.embeddings.position_ids", "text_model.embeddings.token_type_ids")  # transformers' index buffers


@dataclass(frozen=True)
class ClapTextConfig:
    """The keys of a ClapTextConfig's config.json that the tower uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    projection_dim: int
    hidden_act: str = "gelu"
    projection_hidden_act: str = "relu"
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 1
    type_vocab_size: int = 1

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "text_encoder/config.json") -> "ClapTextConfig":
        """Every key read with its type and range (configs.py): a broken config is one CheckpointError line."""
        configs.config_object(cfg, where)
        big, repeat = configs.MAX_TRANSFORMERS_INT, configs.MAX_TRANSFORMERS_REPEAT
        values = {name: configs.integer(cfg, name, where, high=big)
                  for name in ("vocab_size", "intermediate_size", "max_position_embeddings")}
        values.update({name: configs.integer(cfg, name, where)
                       for name in ("hidden_size", "num_attention_heads", "projection_dim")})
        values["num_hidden_layers"] = configs.integer(cfg, "num_hidden_layers", where, high=repeat)
        values["pad_token_id"] = configs.integer(cfg, "pad_token_id", where, 1, low=0, high=big)
        values["type_vocab_size"] = configs.integer(cfg, "type_vocab_size", where, 1, high=big)
        values["layer_norm_eps"] = configs.number(cfg, "layer_norm_eps", where, 1e-12, high=1.0, above=0.0)
        for name, default in (("hidden_act", "gelu"), ("projection_hidden_act", "relu")):
            value = configs.get(cfg, name, where, default)
            if not isinstance(value, str) or value not in ACTIVATIONS:
                raise configs.refuse(where, name, value, f"give one of {', '.join(ACTIVATIONS)}")
            values[name] = value
        config = cls(**values)
        if config.hidden_size % config.num_attention_heads:
            raise CheckpointError(f"{where}: hidden_size={config.hidden_size} is not divisible by "
                                  f"num_attention_heads={config.num_attention_heads}")
        return config


class TextOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, L, hidden_size)
    pooler_output: torch.Tensor  # (B, hidden_size)


def _linear(n_in: int, n_out: int) -> nn.Linear:
    return nn.Linear(n_in, n_out)


class TextModel(nn.Module):
    """RoBERTa as transformers' ClapTextModel names it: embeddings, encoder.layer.N.{attention.self.{query,key,value},
    attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}}, pooler.dense."""

    def __init__(self, c: ClapTextConfig):
        super().__init__()
        d = c.hidden_size
        self.config = c
        self.embeddings = nn.ModuleDict(dict(
            word_embeddings=nn.Embedding(c.vocab_size, d), position_embeddings=nn.Embedding(c.max_position_embeddings, d),
            token_type_embeddings=nn.Embedding(c.type_vocab_size, d), LayerNorm=nn.LayerNorm(d, eps=c.layer_norm_eps)))
        self.encoder = nn.ModuleDict(dict(layer=nn.ModuleList(nn.ModuleDict(dict(
            attention=nn.ModuleDict({"self": nn.ModuleDict(dict(query=_linear(d, d), key=_linear(d, d),
                                                                 value=_linear(d, d))),
                                     "output": nn.ModuleDict(dict(dense=_linear(d, d),
                                                                  LayerNorm=nn.LayerNorm(d, eps=c.layer_norm_eps)))}),
            intermediate=nn.ModuleDict(dict(dense=_linear(d, c.intermediate_size))),
            output=nn.ModuleDict(dict(dense=_linear(c.intermediate_size, d),
                                      LayerNorm=nn.LayerNorm(d, eps=c.layer_norm_eps))),
        )) for _ in range(c.num_hidden_layers))))
        self.pooler = nn.ModuleDict(dict(dense=_linear(d, d)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TextOutput:
        c, e = self.config, self.embeddings
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        real = input_ids.ne(c.pad_token_id).long()
        positions = torch.cumsum(real, dim=1) * real + c.pad_token_id  # RoBERTa: padding keeps the padding index
        token_type = torch.zeros_like(input_ids)
        h = e.word_embeddings(input_ids) + e.token_type_embeddings(token_type) + e.position_embeddings(positions)
        h = e.LayerNorm(h)
        b, length, d = h.shape
        heads = c.num_attention_heads
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L): attend to real tokens only
        act = ACTIVATIONS[c.hidden_act]
        for layer in self.encoder.layer:
            attn = layer.attention
            q, k, v = (attn["self"][name](h).view(b, length, heads, d // heads).transpose(1, 2)
                       for name in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, length, d)
            h = attn.output.LayerNorm(h + attn.output.dense(a))
            h = layer.output.LayerNorm(h + layer.output.dense(act(layer.intermediate.dense(h))))
        return TextOutput(h, torch.tanh(self.pooler.dense(h[:, 0])))


class Projection(nn.Module):
    def __init__(self, c: ClapTextConfig):
        super().__init__()
        self.linear1 = _linear(c.hidden_size, c.projection_dim)
        self.linear2 = _linear(c.projection_dim, c.projection_dim)
        self.act = ACTIVATIONS[c.projection_hidden_act]

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(pooled)))


class ClapTextTower(nn.Module):
    """transformers' ClapTextModelWithProjection, inference only: `text_model(input_ids=, attention_mask=)` →
    TextOutput, `text_projection(pooled)` → (B, projection_dim); conditioning.clap_text_embeds drives it."""

    def __init__(self, config: ClapTextConfig):
        super().__init__()
        self.config = config
        self.text_model = TextModel(config)
        self.text_projection = Projection(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.linear1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.text_projection.linear1.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_projection(self.text_model(input_ids, attention_mask).pooler_output)


def without_index_buffers(state: dict) -> dict:
    """transformers saves the embeddings' position_ids / token_type_ids index buffers (not weights); drop them."""
    return {k: v for k, v in state.items() if k not in BUFFERS}


# ------------------------------------------------------------------------------------------------- tokenizer


class Tokens(NamedTuple):
    input_ids: torch.Tensor  # (B, L) int64
    attention_mask: torch.Tensor  # (B, L) int64


class BpeTokenizer:
    """The fast tokenizer transformers saves as tokenizer.json (byte-level BPE with RoBERTa's <s> … </s>, or BERT's
    WordPiece with [CLS] … [SEP]: readable_tokenizer), driven
    the way transformers' RobertaTokenizer(Fast) is called: tokenizer(texts, padding="max_length" | True,
    max_length=N, truncation=True, return_tensors="pt") → .input_ids, .attention_mask; `model_max_length` from
    tokenizer_config.json."""

    def __init__(self, backend, model_max_length: int, pad_token: str):
        self.backend = backend
        self.model_max_length = model_max_length
        self.pad_token = pad_token
        self.pad_token_id = backend.token_to_id(pad_token)
        if self.pad_token_id is None:
            raise CheckpointError(f"tokenizer.json has no padding token {pad_token!r}")
        self._lock = threading.Lock()  # the backend's padding and truncation settings are per call

    @classmethod
    def from_folder(cls, folder: Path) -> "BpeTokenizer":
        from tokenizers import Tokenizer

        try:
            backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise CheckpointError(f"{folder / 'tokenizer.json'} could not be read ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        config, where = {}, folder / "tokenizer_config.json"
        if where.is_file():
            try:
                config = configs.config_object(json.loads(where.read_text(encoding="utf-8")), str(where))
            except (ValueError, RecursionError) as exc:
                raise CheckpointError(f"{where} is not valid JSON ({' '.join(str(exc).split())[:120]})") from None
        length = config.get("model_max_length")
        if not configs.is_whole(length) or not 1 <= length <= 1_000_000:  # transformers' "no limit" is 1e30
            length = 512
        pad = config.get("pad_token", "<pad>")
        pad = pad.get("content", "<pad>") if isinstance(pad, dict) else pad
        if not isinstance(pad, str) or backend.token_to_id(pad) is None:
            raise configs.refuse(str(where), "pad_token", pad, "give a token of tokenizer.json's vocabulary")
        return cls(backend, int(length), pad)

    def __call__(self, texts, padding="max_length", max_length: int | None = None, truncation: bool = True,
                 return_tensors: str = "pt") -> Tokens:
        texts = [texts] if isinstance(texts, str) else list(texts)
        max_length = self.model_max_length if max_length is None else max_length
        with self._lock:
            if truncation:
                self.backend.enable_truncation(max_length)
            else:
                self.backend.no_truncation()
            fixed = padding == "max_length"
            if padding:
                self.backend.enable_padding(pad_id=self.pad_token_id, pad_token=self.pad_token,
                                            length=max_length if fixed else None)
            else:
                self.backend.no_padding()
            encodings = self.backend.encode_batch(texts)
        return Tokens(torch.tensor([e.ids for e in encodings], dtype=torch.long),
                      torch.tensor([e.attention_mask for e in encodings], dtype=torch.long))


def readable_tokenizer(folder: Path) -> bool:
    """Whether `folder` holds a tokenizer.json BpeTokenizer can run: a byte-level BPE with RoBERTa's specials (CLAP's
    own), or a WordPiece with BERT's normaliser and [CLS] … [SEP] template (the demo's sentence tower)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return False
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(spec, dict):
        return False
    model, post, norm = spec.get("model"), spec.get("post_processor"), spec.get("normalizer")
    if not (isinstance(model, dict) and isinstance(post, dict)):
        return False
    if model.get("type") == "BPE":
        return post.get("type") == "RobertaProcessing"
    return model.get("type") == "WordPiece" and post.get("type") in ("BertProcessing", "TemplateProcessing") \
        and isinstance(norm, dict) and norm.get("type") == "BertNormalizer"
