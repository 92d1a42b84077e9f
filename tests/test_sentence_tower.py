"""The demo's text tower: a BERT sentence encoder (the teacher the demo's UNet was conditioned on) rewritten as a CLAP
text tower gives the teacher's mean-pooled, projected vector, and a pipeline folder holding it (BertTokenizer named
in model_index.json) is one that diffusers' AudioLDMPipeline loads and runs — the bundled demo included."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soundsmith.train import clap, sentence_tower

WORDS = ("a an the dog dogs bark barking rain raining falls on roof man woman speaking piano played softly loud "
         "engine car bell rings drum beat water river slowly quickly gentleman puppy lady").split()
TEXTS = ["a dog barking", "", "rain falls on the roof, loudly!", "a gentleman speaking slowly", "piano",
         "the engine of a car"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT (width 16, 2 heads) with a WordPiece vocabulary, saved as a sentence-transformers
    teacher folder is (config.json, model.safetensors, vocab.txt)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz,!.'"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters + [f"##{c}" for c in letters] + list(WORDS)
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
                        layer_norm_eps=1e-12, initializer_range=0.5, pad_token_id=0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def orthonormal(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)))[0]


def teacher_targets(folder, projection, texts=TEXTS) -> torch.Tensor:
    return F.normalize(clap.teacher_embeds(folder, texts) @ projection, dim=-1)


def test_sentence_tower_gives_the_teachers_projected_mean_pooled_vector(tiny_bert):
    projection = orthonormal(16, 8)
    model = sentence_tower.build(tiny_bert, projection, max_tokens=32)
    tokenizer = sentence_tower.tokenizer(tiny_bert, max_tokens=32)
    got = sentence_tower.embed(model, tokenizer, TEXTS)  # one padded batch: lengths differ
    cosine = (got * teacher_targets(tiny_bert, projection)).sum(-1)
    assert cosine.min() > 0.9999, cosine
    others = got @ teacher_targets(tiny_bert, projection).T - 2 * torch.eye(len(TEXTS))
    assert others.max() < 0.99  # the texts' targets differ: matching every one of them means something


def test_sentence_tower_survives_float16_storage_and_strict_loading(tiny_bert, tmp_path):
    from soundsmith.checkpoints import load_transformers

    projection = orthonormal(16, 8, seed=1)
    sentence_tower.save(sentence_tower.build(tiny_bert, projection, max_tokens=32),
                        sentence_tower.tokenizer(tiny_bert, max_tokens=32), tmp_path)
    model = load_transformers("ClapTextModelWithProjection", tmp_path / "text_encoder", dtype=torch.float32)
    tokenizer = load_transformers("BertTokenizer", tmp_path / "tokenizer")
    assert tokenizer.model_max_length == 32 and (tmp_path / "tokenizer" / "vocab.txt").is_file()
    got = sentence_tower.embed(model, tokenizer, TEXTS)
    assert (got * teacher_targets(tiny_bert, projection)).sum(-1).min() > 0.999


def test_sentence_tower_refuses_a_projection_wider_than_half_the_teacher(tiny_bert):
    from soundsmith.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"projection of shape \(16, 9\)"):
        sentence_tower.build(tiny_bert, orthonormal(16, 9))


def test_recovered_projection_takes_each_axis_sign_from_the_distilled_tower(tiny_bert, tmp_path):
    """A pipeline whose tower was distilled onto P (here: the exact tower of P with some axes negated) tells
    recover_projection which sign each principal axis had."""
    captions = [" ".join(np.random.default_rng(i).choice(WORDS, 4)) for i in range(60)]
    teacher = clap.prepare_teacher(tiny_bert, captions, progress=False)
    axes = clap.principal_axes(torch.cat([teacher["captions"], teacher["word_embeds"]]).float(), 8)
    signs = torch.tensor([1, -1, 1, 1, -1, -1, 1, -1.0])
    sentence_tower.install(sentence_tower.build(tiny_bert, axes * signs, max_tokens=32),
                           sentence_tower.tokenizer(tiny_bert, max_tokens=32), _pipeline_stub(tmp_path))
    recovered = sentence_tower.recover_projection(tiny_bert, captions, tmp_path)
    assert torch.allclose(recovered, axes * signs)


def test_projection_reads_back_out_of_a_saved_tower(tiny_bert, tmp_path):
    """`train unet --clap PIPELINE` continues training a demo whose tower `train tower` built: P comes back out of the
    float16 text encoder close enough that the conditioning vectors the UNet trains on are the same."""
    from soundsmith.errors import InvalidArgument
    from soundsmith.train.cli import teacher_projection

    projection = orthonormal(16, 8, seed=2) * torch.linspace(0.5, 2.0, 8)  # not unit columns: the gain is divided out
    sentence_tower.install(sentence_tower.build(tiny_bert, projection, max_tokens=32),
                           sentence_tower.tokenizer(tiny_bert, max_tokens=32), _pipeline_stub(tmp_path))
    read = teacher_projection(tmp_path)
    assert read.shape == (16, 8) and torch.allclose(read, projection, rtol=2e-3, atol=2e-3)
    agreement = (teacher_targets(tiny_bert, read) * teacher_targets(tiny_bert, projection)).sum(-1)
    assert agreement.min() > 0.99999, agreement
    torch.save(projection.flip(1), tmp_path / "projection.pt")  # a folder's projection.pt comes first
    assert torch.equal(teacher_projection(tmp_path), projection.flip(1))
    with pytest.raises(InvalidArgument, match=r"--clap .*empty: holds neither projection.pt nor text_encoder/"):
        teacher_projection(tmp_path / "empty")


def test_the_text_stage_projection_is_computed_once_and_is_what_the_unet_stage_reads(tmp_path):
    """`train clap --text-from` writes the teacher's principal axes to OUT/projection.pt (a resumed run reuses them)
    and `train unet --conditioning teacher --clap OUT` conditions on exactly those."""
    from soundsmith.train.cli import principal_projection, teacher_projection

    generator = torch.Generator().manual_seed(0)
    teacher = {"captions": torch.randn(12, 16, generator=generator),
               "word_embeds": torch.randn(20, 16, generator=generator)}
    projection = principal_projection(tmp_path, teacher, 4)
    expected = clap.principal_axes(torch.cat([teacher["captions"], teacher["word_embeds"]]), 4)
    assert projection.shape == (16, 4) and torch.equal(projection, expected)
    other = {"captions": torch.zeros(1, 16), "word_embeds": torch.zeros(1, 16)}
    assert torch.equal(principal_projection(tmp_path, other, 4), expected)  # kept: computed once
    assert torch.equal(teacher_projection(tmp_path), expected)


def test_projection_is_not_read_out_of_a_tower_of_another_make(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    from soundsmith.errors import CheckpointError

    sentence_tower.save(sentence_tower.build(tiny_bert, orthonormal(16, 8), max_tokens=32),
                        sentence_tower.tokenizer(tiny_bert, max_tokens=32), tmp_path)
    weights = tmp_path / "text_encoder" / "model.safetensors"
    state = load_file(weights)
    state["text_model.encoder.layer.2.attention.self.query.weight"][0, 0] = 0.5  # attention no longer a mean
    save_file(state, weights)
    with pytest.raises(CheckpointError, match=r"text_encoder: this text tower was not built by `soundsmith train "
                                              r"tower`"):
        sentence_tower.read_projection(tmp_path / "text_encoder")


def _pipeline_stub(folder):
    (folder / "model_index.json").write_text(json.dumps({"tokenizer": ["transformers", "RobertaTokenizer"]}))
    return folder


def test_audioldm_folder_with_the_sentence_tower_matches_diffusers(tiny_audioldm, tiny_bert, tmp_path):
    pytest.importorskip("diffusers")
    from parity import TOLERANCE, compare

    folder = tmp_path / "tiny-audioldm-bert"
    shutil.copytree(tiny_audioldm, folder)
    sentence_tower.install(sentence_tower.build(tiny_bert, orthonormal(16, 8, seed=2), max_tokens=32),
                           sentence_tower.tokenizer(tiny_bert, max_tokens=32), folder, dtype=torch.float32)
    assert json.loads((folder / "model_index.json").read_text())["tokenizer"] == ["transformers", "BertTokenizer"]
    errors = compare(folder, latents_shape=(1, 4, 32, 4), prompt="a dog barking in the rain",
                     negative_prompt="piano", num_inference_steps=3, guidance_scale=2.5)
    assert errors["mel"] < TOLERANCE and errors["waveform"] < TOLERANCE, errors


def test_diffusers_loads_and_runs_the_bundled_demo_like_soundsmith():
    """Issue 21 item 4: the demo, with its BERT-family tower in the CLAP slot, is an AudioLDMPipeline folder."""
    pytest.importorskip("diffusers")
    from parity import compare

    from soundsmith.checkpoints import DEMO_FOLDER

    index = json.loads((DEMO_FOLDER / "model_index.json").read_text())
    assert index["_class_name"] == "AudioLDMPipeline" and index["text_encoder"][1] == "ClapTextModelWithProjection"
    torch.set_num_threads(1)
    errors = compare(DEMO_FOLDER, latents_shape=(1, 8, 22, 20), prompt="a puppy yapping", num_inference_steps=2,
                     guidance_scale=2.5, audio_length_in_s=1.0)
    assert errors["mel"] < 1e-3 and errors["waveform"] < 1e-3, errors
    assert np.abs(errors["reference"]).max() > 1e-3  # real sound, not a random model's whisper
