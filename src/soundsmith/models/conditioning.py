"""Text conditioning: prompts → the tensors the UNet is conditioned on.

The encoders themselves are transformers models (CLAP's RoBERTa text tower, Flan-T5, GPT-2, VITS); what is ours is
how they are driven — tokenisation exactly as the reference pipelines do it, the AudioLDM 2 projection and GPT-2
"language of audio" loop.
"""

import torch
import torch.nn.functional as F

from .. import configs


def tokenize(tokenizer, texts: list[str], padding, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids and attention mask (B, L), truncated to max_length; padding "max_length" or True (longest)."""
    tokens = tokenizer(texts, padding=padding, max_length=max_length, truncation=True, return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask


def drop_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the columns where every row is padding. Attention masks them, so the encoder's outputs for real tokens
    are the same; CLAP pads to 512 tokens, so this makes text encoding an order of magnitude cheaper."""
    keep = max(int(mask.sum(1).max()), 1)
    return ids[:, :keep], mask[:, :keep]


def clap_text_embeds(clap, tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
    """CLAP text embedding, L2-normalised, (B, projection_dim).

    Works for `ClapTextModelWithProjection` (AudioLDM: `text_embeds` then `F.normalize` in the pipeline) and
    `ClapModel` (MusicLDM, AudioLDM 2: `get_text_features`, normalised inside): both are the projection of the
    pooled first token, normalised — computed here directly, so transformers 4 and 5 give the same tensor."""
    ids, mask = drop_padding(*tokenize(tokenizer, texts, "max_length", max_length))
    device = clap.text_projection.linear1.weight.device
    pooled = clap.text_model(input_ids=ids.to(device), attention_mask=mask.to(device)).pooler_output
    return F.normalize(clap.text_projection(pooled), dim=-1)


# ---- AudioLDM 2 ---------------------------------------------------------------------------------------------------

def projection_config(cfg: dict, where: str = "projection config") -> dict:
    """A `projection_model/config.json` checked for Projection: the three widths whole numbers, learned positions
    null or a boolean, and max_seq_length a whole number when they are used. → cfg; CheckpointError otherwise."""
    configs.config_object(cfg, where)
    for key in ("langauge_model_dim", "text_encoder_dim", "text_encoder_1_dim"):
        configs.integer(cfg, key, where)
    if cfg.get("use_learned_position_embedding") is not None:
        configs.boolean(cfg, "use_learned_position_embedding", where)
        configs.integer(cfg, "max_seq_length", where, high=configs.MAX_TRANSFORMERS_INT)
    return cfg


class Projection(torch.nn.Module):
    """AudioLDM 2's projection into GPT-2's width, with learned start/end embeddings around each sequence:
    [SOS, clap, EOS, SOS₁, t5₀ … t5_{L−1}, EOS₁] → (B, L + 5, D_lm) (config keys as the checkpoints spell them,
    `langauge_model_dim` included). TTS checkpoints add learned positions to the VITS states first."""

    def __init__(self, config: dict):
        super().__init__()
        dim = config["langauge_model_dim"]
        self.projection = torch.nn.Linear(config["text_encoder_dim"], dim)
        self.projection_1 = torch.nn.Linear(config["text_encoder_1_dim"], dim)
        for name in ("sos_embed", "eos_embed", "sos_embed_1", "eos_embed_1"):
            setattr(self, name, torch.nn.Parameter(torch.ones(dim)))
        self.learned_positions = config.get("use_learned_position_embedding") is not None
        if self.learned_positions:
            self.learnable_positional_embedding = torch.nn.Parameter(
                torch.zeros(1, config["text_encoder_1_dim"], config["max_seq_length"]))

    @staticmethod
    def _wrap(h, mask, sos, eos):
        b = h.shape[0]
        h = torch.cat([sos.expand(b, 1, -1).to(h.dtype), h, eos.expand(b, 1, -1).to(h.dtype)], dim=1)
        ones = mask.new_ones(b, 1)
        return h, torch.cat([ones, mask, ones], dim=1)

    def forward(self, clap: torch.Tensor, clap_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor):
        """clap (B, 1, D_clap) + mask (B, 1); text (B, L, D_text) + mask (B, L) → (states, mask)."""
        h, mask = self._wrap(self.projection(clap), clap_mask, self.sos_embed, self.eos_embed)
        if self.learned_positions:
            text = text + self.learnable_positional_embedding.transpose(1, 2)
        h1, mask1 = self._wrap(self.projection_1(text), text_mask, self.sos_embed_1, self.eos_embed_1)
        return torch.cat([h, h1], dim=1), torch.cat([mask, mask1.to(mask.dtype)], dim=-1)


def kv_cache_name(model) -> str:
    """The keyword (and output field) of a transformers decoder's key/value cache: `cache` from transformers 5.2x on,
    `past_key_values` before (still accepted there until 5.40, with a FutureWarning)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def gpt2_continue(gpt2, states: torch.Tensor, mask: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """AudioLDM 2's "language of audio": feed the projected sequence (B, L, D) to GPT-2 and append its final hidden
    state (after ln_f) at the last position, `new_tokens` times, with a key/value cache. Positions run over every
    slot, padding included, and the mask grows by a 1 per new state, as the reference does. → (B, new_tokens, D).

    Takes a `GPT2Model` (or the `.transformer` of a `GPT2LMHeadModel`): only hidden states are used."""
    mask = mask.long()
    generated = []
    cache_name = kv_cache_name(gpt2)
    past = None
    step_input = states
    for _ in range(new_tokens):
        out = gpt2(inputs_embeds=step_input, attention_mask=mask, use_cache=True, **{cache_name: past})
        past = out[cache_name]
        step_input = out.last_hidden_state[:, -1:, :]
        generated.append(step_input)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return torch.cat(generated, dim=1)


def t5_states(t5, tokenizer, texts: list[str], padding, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flan-T5 encoder states (B, L, D) and mask (B, L)."""
    ids, mask = tokenize(tokenizer, texts, padding, max_length)
    device = next(t5.parameters()).device
    states = t5(input_ids=ids.to(device), attention_mask=mask.to(device))[0]
    return states, mask.to(device)


def vits_states(vits_text_encoder, tokenizer, transcriptions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """VITS phoneme-encoder states (B, L, 192) and mask (B, L), padded to the tokenizer's max length. As the
    reference does, the first padding id 0 of each row becomes the end token 182 and is unmasked."""
    ids, mask = tokenize(tokenizer, transcriptions, "max_length", tokenizer.model_max_length)
    for row in range(ids.shape[0]):
        pads = (ids[row] == 0).nonzero()
        if len(pads):
            ids[row, pads[0, 0]] = 182
            mask[row, pads[0, 0]] = 1
    device = next(vits_text_encoder.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    states = vits_text_encoder(input_ids=ids, attention_mask=mask, padding_mask=mask.unsqueeze(-1))[0]
    return states, mask
