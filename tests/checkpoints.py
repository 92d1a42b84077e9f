"""Tiny random-weight pipelines in the diffusers folder layout, and the diffusers oracle that runs them.

No model hub is reachable here, so every test builds its checkpoints: the components are diffusers' own test
configurations (reference/diffusers-spec.md §8.1), the tokenizers are trained locally on a small caption corpus
(RoBERTa-layout byte-level BPE for CLAP, T5-layout sentencepiece unigram for Flan-T5, a character vocabulary for
VITS), and `DiffusionPipeline.save_pretrained` writes the folder. Rebuilding gives byte-identical files.

Two deliberate departures from a plain `save_pretrained`, both towards the hub checkpoints:
- `model_index.json` names the tokenizers `RobertaTokenizerFast` / `T5TokenizerFast` as the hub folders do
  (transformers 5 saves them as `RobertaTokenizer` / `T5Tokenizer`, the same classes under new names), and the
  tokenizer folders also hold `vocab.json` + `merges.txt` / `spiece.model` beside `tokenizer.json`.
- every parameter that the default initialisation leaves constant (norm weights 1, biases 0, AudioLDM 2's
  SOS/EOS embeddings, VITS learned positions, ...) gets small seeded noise, so a parity test notices a missing
  affine, a swapped SOS/EOS or a dropped bias instead of multiplying by one; and the transformers components
  (CLAP, T5, GPT-2, VITS, HiFi-GAN) get unit-gain weights, so the waveform is ~0.1 in amplitude and depends on
  the mel, and the text encoders tell prompts apart (see `_reinit_unit_gain`).

`load_reference(path)` returns diffusers' pipeline for a folder, patched where diffusers breaks on transformers 5
(patches live here, never in soundsmith).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch

# Captions the tokenizers are trained on. Combinatorial, so the BPE / unigram trainers see enough text.
_SOURCES = [
    "dog", "cat", "hammer", "car engine", "bird", "piano", "guitar", "drum kit", "violin", "crowd", "baby",
    "train", "helicopter", "thunderstorm", "river", "kettle", "door", "clock", "bell", "siren", "man", "woman",
    "children", "orchestra", "synthesizer", "saxophone", "trumpet", "cello", "flute", "egg", "motorcycle", "dj",
]
_ACTIONS = [
    "barking", "meowing", "hitting a wooden surface", "idling", "chirping", "playing a slow melody",
    "strumming chords", "playing a fast beat", "singing", "cheering", "crying", "passing by", "flying overhead",
    "rumbling", "flowing", "whistling", "slamming", "ticking", "ringing", "wailing", "speaking", "laughing",
    "cracking", "humming", "mixing techno music",
]
_PLACES = [
    "in the rain", "in a small room", "in a large hall", "outdoors", "at night", "in the distance",
    "close to the microphone", "on a busy street", "in a forest", "underwater", "with reverb",
    "with background noise", "",
]
_FIXED = [
    "A hammer hitting a wooden surface", "egg cracking", "this is a negative prompt", "Low quality.", "hey",
    "A men saying", "hello my name is John", "The sound of a hammer hitting a wooden surface.",
    "Techno music with a strong, upbeat tempo and high melodic riffs.",
    "Musical constellations twinkling in the night sky",
    "A dog is barking in the rain, 2 cars pass by!", "Water drops echo in a cave; a bat flaps its wings?",
]


def caption_corpus() -> list[str]:
    """About 3,000 English captions, in a fixed order (the tokenizer trainers' only input)."""
    captions = list(_FIXED)
    i = 0
    for source in _SOURCES:
        for action in _ACTIONS:
            place = _PLACES[i % len(_PLACES)]
            article = "An" if source[0] in "aeiou" else "A"
            text = f"{article} {source} {action} {place}".strip()
            captions.append(text + ("." if i % 3 == 0 else ""))
            captions.append(f"the sound of a {source} {action}, {_PLACES[(i * 7) % len(_PLACES)]}".strip(", "))
            i += 1
    return captions * 2


# ------------------------------------------------------------------------------------------------ tokenizers


def roberta_tokenizer(*, model_max_length: int = 77, vocab_size: int = 1000):
    """CLAP tokenizer: byte-level BPE in the RoBERTa layout (<s> 0, <pad> 1, </s> 2, <unk> 3, <mask> last).

    The trained vocabulary is padded with unreachable filler tokens up to `vocab_size` (50265 for the real size).
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        caption_corpus(), vocab_size=min(vocab_size - 1, 2000), min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False,
    )
    model = json.loads(bpe._tokenizer.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    for i in range(len(vocab), vocab_size - 1):
        vocab[f"<filler_{i}>"] = i
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def t5_tokenizer(*, model_max_length: int = 128, pieces: int | None = None, extra_ids: int = 100):
    """Flan-T5 tokenizer: sentencepiece unigram in the T5 layout (<pad> 0, </s> 1, <unk> 2, extra ids last).

    Returns `(tokenizer, spiece_model_bytes)`. `pieces` pads the sentencepiece vocabulary with unreachable filler
    pieces (32000 for the real size; the tokenizer then has pieces + extra_ids = 32100 tokens).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2
    from transformers import T5Tokenizer

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(caption_corpus()), model_writer=buffer, vocab_size=400 if pieces is None else 1000,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        num_threads=1, hard_vocab_limit=False, minloglevel=2,
    )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buffer.getvalue())
    for i in range(len(proto.pieces), pieces or 0):
        proto.pieces.add(piece=f"<filler_{i}>", score=-100.0, type=proto.SentencePiece.NORMAL)
    vocab = [(p.piece, p.score) for p in proto.pieces]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
    tokenizer = T5Tokenizer(
        vocab=vocab, _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap, extra_ids=extra_ids,
        model_max_length=model_max_length,
    )
    return tokenizer, proto.SerializeToString()


VITS_VOCAB_SIZE = 183  # AudioLDM 2 speech phoneme vocabulary: pad "_" 0, ..., end token 182 (spec §3.6)


def vits_tokenizer(folder: Path, *, model_max_length: int = 32):
    """Character-level VitsTokenizer (phonemize=False, add_blank=False, normalize=True), written to `folder`."""
    from transformers import VitsTokenizer

    symbols = ["_"] + list(" abcdefghijklmnopqrstuvwxyz',.!?-") + list("0123456789")
    symbols += [f"<p{i}>" for i in range(len(symbols), VITS_VOCAB_SIZE - 2)] + ["<unk>", "<eos>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({s: i for i, s in enumerate(symbols)}, indent=2) + "\n")
    return VitsTokenizer(
        vocab_file=str(vocab_file), pad_token="_", unk_token="<unk>", add_blank=False, normalize=True,
        phonemize=False, model_max_length=model_max_length,
    )


def clap_feature_extractor(*, feature_size: int = 64, hop_length: int = 7900, truncation: str = "fusion"):
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(feature_size=feature_size, hop_length=hop_length, truncation=truncation)


# ------------------------------------------------------------------------------------------- tiny components


def _vocoder():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
        normalize_before=False,
    ))


def _test_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False)


def _vae(channels: list[int], norm_num_groups: int = 32, **kwargs):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=channels, in_channels=1, out_channels=1, norm_num_groups=norm_num_groups,
        down_block_types=["DownEncoderBlock2D"] * len(channels), up_block_types=["UpDecoderBlock2D"] * len(channels),
        latent_channels=4, **kwargs,
    )


def _clap_model(text: dict, audio: dict, projection_dim: int):
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    text_config = ClapTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=1000,
                                 intermediate_size=37, layer_norm_eps=1e-05, **text).to_dict()
    audio_config = ClapAudioConfig(intermediate_size=37, layer_norm_eps=1e-05, hidden_size=192, patch_size=2,
                                   patch_stride=2, patch_embed_input_channels=4, window_size=4, **audio).to_dict()
    return ClapModel(ClapConfig(text_config=text_config, audio_config=audio_config, projection_dim=projection_dim))


def _perturb_constant_parameters(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every parameter whose elements are all equal seeded noise: norm weights and other ones become
    1 + N(0, 0.1), zero biases / positions N(0, 0.02) (about the size of the weights' own init)."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            if p.is_floating_point() and bool((flat == flat[0]).all()):
                scale = 0.02 if float(flat[0]) == 0.0 else 0.1
                p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)


def _reinit_unit_gain(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Redraw a transformers model's weights so that every layer roughly preserves the size of its input:
    Linear / Conv weights N(0, 1/fan_in), embeddings N(0, 1); then the constant-parameter noise above.

    transformers' init (std 0.01-0.02) shrinks signals layer by layer: a random HiFi-GAN emits ~1e-6 whatever the
    mel, and a tiny CLAP gives cosine 0.999 between any two prompts. With unit gain the tiny vocoder emits ~0.1
    and follows its input, and the text encoders tell prompts apart (CLAP cosine ~0.9), so parity tests see the
    conditioning path.
    """
    transposed = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if name != "weight" or p.dim() < 2:
                    continue
                if isinstance(module, torch.nn.Embedding):
                    std = 1.0
                elif isinstance(module, transposed) or type(module).__name__ == "Conv1D":  # (in, out, ...) layouts
                    std = (p.shape[0] * p[0, 0].numel()) ** -0.5
                elif isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                    std = p[0].numel() ** -0.5
                else:
                    continue
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)
    _perturb_constant_parameters(model, generator)


def _finish(components: dict) -> dict:
    """eval() every module and re-draw its weights (seeded per component name): diffusers models keep their
    PyTorch default init (already about unit gain, non-zero biases) and get the constant-parameter noise;
    transformers models get `_reinit_unit_gain`."""
    for i, (name, component) in enumerate(sorted(components.items())):
        generator = torch.Generator().manual_seed(1000 + i)
        component.eval()
        if type(component).__module__.startswith("transformers"):
            _reinit_unit_gain(component, generator)
        else:
            _perturb_constant_parameters(component, generator)
    return components


# ---------------------------------------------------------------------------------------------- folder output


def save_pipeline(pipe, path: Path, *, spiece_model: bytes | None = None, legacy_vae_keys: bool = False) -> Path:
    """`pipe.save_pretrained(path)` plus the hub-layout touches described in the module docstring."""
    path = Path(path)
    pipe.save_pretrained(path, safe_serialization=True)
    index_file = path / "model_index.json"
    index = json.loads(index_file.read_text())
    for name, fast in [("tokenizer", "RobertaTokenizerFast"), ("tokenizer_2", "T5TokenizerFast")]:
        if name in index and index[name][1] == fast.replace("Fast", ""):
            index[name] = ["transformers", fast]
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    _write_bpe_files(path / "tokenizer")
    if spiece_model is not None:
        (path / "tokenizer_2" / "spiece.model").write_bytes(spiece_model)
    if legacy_vae_keys:
        rename_vae_attention_keys_to_legacy(path / "vae")
    return path


def _write_bpe_files(folder: Path) -> None:
    """vocab.json + merges.txt beside tokenizer.json, as the hub's CLAP tokenizer folders have them."""
    saved = json.loads((folder / "tokenizer.json").read_text())
    model = saved["model"]
    vocab = dict(model["vocab"])
    for token in saved["added_tokens"]:
        vocab.setdefault(token["content"], token["id"])
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))


_LEGACY_ATTENTION_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def rename_vae_attention_keys_to_legacy(vae_folder: Path) -> None:
    """Rename the VAE mid-block attention keys to `query/key/value/proj_attn`, as the AudioLDM conversion wrote."""
    from safetensors.torch import load_file, save_file

    file = Path(vae_folder) / "diffusion_pytorch_model.safetensors"
    state = load_file(file)
    renamed = {}
    for key, tensor in state.items():
        for new, old in _LEGACY_ATTENTION_NAMES.items():
            marker = f"mid_block.attentions.0.{new}."
            if marker in key:
                key = key.replace(marker, f"mid_block.attentions.0.{old}.")
        renamed[key] = tensor
    save_file(renamed, file, metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------------- builders


def build_audioldm(path, *, legacy_vae_keys: bool = False, clap_max_length: int = 77) -> Path:
    """Tiny AudioLDM (diffusers' test config): UNet (8,16) with a CLAP class embedding, VAE [8,16], CLAP text
    hidden 8 / projection 8, HiFi-GAN model_in_dim 8. `clap_max_length=512` gives the real tokenizer length."""
    from diffusers import AudioLDMPipeline, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=(8, 16),
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=8, class_embeddings_concat=True,
    )
    torch.manual_seed(0)
    vae = _vae([8, 16], norm_num_groups=8)
    torch.manual_seed(0)
    text_encoder = ClapTextModelWithProjection(ClapTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=8, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=1, num_hidden_layers=1, pad_token_id=1, vocab_size=1000, projection_dim=8,
    ))
    torch.manual_seed(0)
    components = _finish(dict(unet=unet, vae=vae, text_encoder=text_encoder, vocoder=_vocoder()))
    pipe = AudioLDMPipeline(**components, scheduler=_test_scheduler(),
                            tokenizer=roberta_tokenizer(model_max_length=clap_max_length))
    return save_pipeline(pipe, path, legacy_vae_keys=legacy_vae_keys)


def build_musicldm(path, *, clap_max_length: int = 77) -> Path:
    """Tiny MusicLDM (diffusers' test config): UNet (32,64), VAE [32,64], ClapModel (text hidden 16, HTSAT audio
    tower spec 64 / 64 mels), projection 32, ClapFeatureExtractor (hop 7900, truncation "fusion")."""
    from diffusers import MusicLDMPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 64), class_embed_type="simple_projection", projection_class_embeddings_input_dim=32,
        class_embeddings_concat=True,
    )
    torch.manual_seed(0)
    vae = _vae([32, 64])
    torch.manual_seed(0)
    text_encoder = _clap_model(
        dict(hidden_size=16, num_attention_heads=2, num_hidden_layers=2),
        dict(spec_size=64, num_mel_bins=64, depths=[2, 2], num_attention_heads=[2, 2], num_hidden_layers=2),
        projection_dim=32,
    )
    torch.manual_seed(0)
    components = _finish(dict(unet=unet, vae=vae, text_encoder=text_encoder, vocoder=_vocoder()))
    pipe = MusicLDMPipeline(**components, scheduler=_test_scheduler(),
                            tokenizer=roberta_tokenizer(model_max_length=clap_max_length),
                            feature_extractor=clap_feature_extractor(feature_size=64))
    return save_pipeline(pipe, path)


AUDIOLDM2_VARIANTS = ("base", "large", "gpt2model", "tts")


def build_audioldm2(path, *, variant: str = "base", clap_max_length: int = 77) -> Path:
    """Tiny AudioLDM 2. Variants (CLAP projection 16, T5 d_model 32, GPT-2 n_embd 16 throughout):

    - "base": diffusers' test config. UNet (8,16), cross_attention_dim (8,16) (one int per block, so the UNet
      cross-attends to the GPT-2 states only), T5 + unigram tokenizer (100 extra ids, model_max_length 128),
      GPT2LMHeadModel with config.max_new_tokens 8.
    - "large": UNet cross_attention_dim [None, 16, 32, None] per block and transformer_layers_per_block 2
      (self, GPT-2, T5, self: the audioldm2-large layout; 8 transformers per layer).
    - "gpt2model": "base" with the language model saved as GPT2Model, as the hub checkpoints are.
    - "tts": VitsModel text encoder + character VitsTokenizer (model_max_length 32), projection with learned
      positions (max_seq_length 32), UNet cross_attention_dim [None, 16] per block, GPT2Model like the hub.
    """
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model, T5Config, T5EncoderModel

    if variant not in AUDIOLDM2_VARIANTS:
        raise ValueError(f"variant must be one of {AUDIOLDM2_VARIANTS}, got {variant!r}")
    path = Path(path)
    cross_attention_dim = {"base": (8, 16), "gpt2model": (8, 16), "large": ([None, 16, 32, None],) * 2,
                           "tts": ([None, 16],) * 2}[variant]
    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross_attention_dim,
        transformer_layers_per_block=2 if variant == "large" else 1,
    )
    torch.manual_seed(0)
    vae = _vae([8, 16], norm_num_groups=8)
    torch.manual_seed(0)
    # text tower as diffusers' test; audio tower as the MusicLDM test's, because the test config's 8×8 HTSAT cannot
    # run at all (transformers' window attention fails on it), and ranking needs a working audio tower
    text_encoder = _clap_model(
        dict(hidden_size=8, num_attention_heads=1, num_hidden_layers=1),
        dict(spec_size=64, num_mel_bins=64, depths=[2, 2], num_attention_heads=[2, 2], num_hidden_layers=2),
        projection_dim=16,
    )
    torch.manual_seed(0)
    spiece_model = None
    if variant == "tts":
        from transformers import VitsConfig, VitsModel

        with tempfile.TemporaryDirectory() as vocab_folder:
            tokenizer_2 = vits_tokenizer(Path(vocab_folder), model_max_length=32)
        text_encoder_2 = VitsModel(VitsConfig(
            vocab_size=VITS_VOCAB_SIZE, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=16,
            flow_size=16, spectrogram_bins=8, upsample_initial_channel=16, upsample_rates=[8, 2],
            upsample_kernel_sizes=[16, 4], resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            duration_predictor_filter_channels=16, duration_predictor_num_flows=2, prior_encoder_num_flows=2,
            prior_encoder_num_wavenet_layers=2, posterior_encoder_num_wavenet_layers=2, depth_separable_num_layers=2,
            pad_token_id=0,
        ))
        text_encoder_2_dim = 16
    else:
        tokenizer_2, spiece_model = t5_tokenizer(model_max_length=128)
        text_encoder_2 = T5EncoderModel(T5Config(vocab_size=32100, d_model=32, d_ff=37, d_kv=8, num_heads=1,
                                                 num_layers=1))
        text_encoder_2_dim = 32
    torch.manual_seed(0)
    lm_class = GPT2LMHeadModel if variant in ("base", "large") else GPT2Model
    language_model = lm_class(GPT2Config(n_embd=16, n_head=1, n_layer=1, vocab_size=1000, n_ctx=99, n_positions=99))
    language_model.config.max_new_tokens = 8
    torch.manual_seed(0)
    if variant == "tts":
        projection_model = AudioLDM2ProjectionModel(16, text_encoder_2_dim, 16, use_learned_position_embedding=True,
                                                    max_seq_length=tokenizer_2.model_max_length)
    else:
        projection_model = AudioLDM2ProjectionModel(16, text_encoder_2_dim, 16)
    components = _finish(dict(
        unet=unet, vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, language_model=language_model,
        projection_model=projection_model, vocoder=_vocoder(),
    ))
    pipe = AudioLDM2Pipeline(
        **components, scheduler=_test_scheduler(), tokenizer=roberta_tokenizer(model_max_length=clap_max_length),
        tokenizer_2=tokenizer_2, feature_extractor=clap_feature_extractor(feature_size=64),
    )
    return save_pipeline(pipe, path, spiece_model=spiece_model)


# ---------------------------------------------------------------------------------------------------- oracle


def load_reference(path, **kwargs):
    """diffusers' pipeline for the folder `path` (float32, CPU, progress bar off), patched to run on the
    transformers installed here:

    - AudioLDM 2 whose model_index says `GPT2Model` (every hub checkpoint): diffusers' `generate_language_model`
      needs GenerationMixin helpers that `GPT2Model` lacks in recent transformers (diffusers issue #12630), so the
      language model is loaded as `GPT2LMHeadModel` (same weights, identical hidden states) and passed in.
    - MusicLDM on transformers 5: `ClapModel.get_text_features` returns a `BaseModelOutputWithPooling` (the
      normalised features are its `pooler_output`) and MusicLDMPipeline calls `.to()` / `.shape` on it. Only
      AudioLDM2Pipeline unwraps `pooler_output` (diffusers v0.37); MusicLDM was never updated. The instance's
      `get_text_features` is wrapped to return the tensor, as transformers 4 did. (The CLAP ranking path calls
      the model itself, not `get_text_features`, so it is untouched.)
    """
    import diffusers
    from transformers.utils import logging as hf_logging

    path = Path(path)
    index = json.loads((path / "model_index.json").read_text())
    pipeline_class = getattr(diffusers, index["_class_name"])
    if index["_class_name"] == "AudioLDM2Pipeline" and index["language_model"][1] == "GPT2Model":
        from transformers import GPT2LMHeadModel

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "GPT2LMHeadModel was not initialized from lm_head" is expected: tied
        try:
            kwargs.setdefault("language_model", GPT2LMHeadModel.from_pretrained(path / "language_model"))
        finally:
            hf_logging.set_verbosity(verbosity)
    pipe = pipeline_class.from_pretrained(path, dtype=torch.float32, **kwargs)
    if index["_class_name"] == "MusicLDMPipeline":
        _unwrap_get_text_features(pipe.text_encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _unwrap_get_text_features(clap_model) -> None:
    original = clap_model.get_text_features

    def get_text_features(*args, **kwargs):
        features = original(*args, **kwargs)
        return getattr(features, "pooler_output", features)

    clap_model.get_text_features = get_text_features


def folder_digest(path) -> dict[str, str]:
    """{relative file path: sha256} for every file under `path` (to prove rebuilds are byte-identical)."""
    import hashlib

    path = Path(path)
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*")) if f.is_file()
    }


def run_reference(pipe, prompt, *, steps: int = 2, seed: int = 0, **kwargs):
    """Run the oracle once with a seeded CPU generator; returns float32 numpy audio (B, samples)."""
    if type(pipe).__name__ == "AudioLDM2Pipeline" and getattr(pipe.text_encoder_2.config, "model_type", "") == "vits":
        kwargs.setdefault("transcription", [f"hello number {i}" for i in range(len(prompt))]
                          if isinstance(prompt, list) else "hello my name is john")
    generator = torch.Generator("cpu").manual_seed(seed)
    return pipe(prompt, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).audios


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
