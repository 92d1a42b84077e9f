"""soundsmith's CLAP text side (models/clap_text.py) against transformers': the same token ids and masks as
RobertaTokenizer (CLAP's byte-level BPE) and BertTokenizer (the demo's sentence tower, WordPiece), the same embeddings as ClapTextModelWithProjection, and AudioLDM / the demo load without importing
transformers at all (its model code is most of a fresh process's start-up)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import soundsmith
from soundsmith import CheckpointError, checkpoints
from soundsmith.models import clap_text
from soundsmith.models.conditioning import clap_text_embeds

DEMO = checkpoints.DEMO_FOLDER
TEXTS = ["a dog barking in the rain", "", "Techno music with a strong, upbeat tempo and high melodic riffs",
         "  spaces  and\ttabs  ", "ünïcödé — émigré's café, 100 % 🎵", "word " * 300, "中文 and UPPER case; it's 3:45pm"]


def folders(request) -> list[Path]:
    return [DEMO, request.getfixturevalue("tiny_audioldm")]


def tokenizer_class(folder: Path) -> str:
    return json.loads((folder / "model_index.json").read_text())["tokenizer"][1]


@pytest.mark.parametrize("padding, max_length", [("max_length", None), (True, None), ("max_length", 16)])
def test_bpe_tokenizer_gives_transformers_ids_and_masks(request, padding, max_length):
    transformers = pytest.importorskip("transformers")
    names = {tokenizer_class(folder) for folder in folders(request)}
    assert "BertTokenizer" in names and {"RobertaTokenizer", "RobertaTokenizerFast"} & names  # both kinds
    for folder in folders(request):
        name = tokenizer_class(folder)
        ours = checkpoints.load_transformers(name, folder / "tokenizer")
        theirs = getattr(transformers, name).from_pretrained(folder / "tokenizer")
        assert isinstance(ours, clap_text.BpeTokenizer) and ours.model_max_length == theirs.model_max_length
        length = max_length or theirs.model_max_length
        a = ours(TEXTS, padding=padding, max_length=length, truncation=True, return_tensors="pt")
        b = theirs(TEXTS, padding=padding, max_length=length, truncation=True, return_tensors="pt")
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_clap_text_tower_matches_transformers(request, dtype):
    transformers = pytest.importorskip("transformers")
    for folder in folders(request):
        ours = checkpoints.load_transformers("ClapTextModelWithProjection", folder / "text_encoder", dtype, "cpu")
        theirs = transformers.ClapTextModelWithProjection.from_pretrained(folder / "text_encoder", dtype=dtype).eval()
        tokenizer = checkpoints.load_transformers(tokenizer_class(folder), folder / "tokenizer")
        assert isinstance(ours, clap_text.ClapTextTower) and ours.dtype == dtype
        with torch.no_grad():
            a = clap_text_embeds(ours, tokenizer, TEXTS, tokenizer.model_max_length).float()
            b = clap_text_embeds(theirs, tokenizer, TEXTS, tokenizer.model_max_length).float()
            ids = tokenizer(TEXTS[:3], padding=True, truncation=True).input_ids
            pooled = theirs.text_model(input_ids=ids).pooler_output
            assert torch.allclose(ours.text_model(ids).pooler_output, pooled, atol=1e-5 if dtype == torch.float32
                                  else 3e-2)
        error = ((a - b).norm() / b.norm()).item()
        if dtype == torch.float32:  # rounding only (the demo's 7-layer, 384-wide sentence tower measures 1.7e-6)
            assert error < 5e-6, (folder, error)
            continue
        # bfloat16: each implementation rounds its own way, so the bar is transformers' own distance from float32
        # (the demo's tower: 11.7 % both, 4 % apart; pipelines keep the text stage in float32, pipelines.base)
        exact = transformers.ClapTextModelWithProjection.from_pretrained(folder / "text_encoder").eval()
        with torch.no_grad():
            c = clap_text_embeds(exact, tokenizer, TEXTS, tokenizer.model_max_length).float()
        ours_off, theirs_off = (((x - c).norm() / c.norm()).item() for x in (a, b))
        assert error < 2e-2 or ours_off <= 1.1 * theirs_off, (folder, error, ours_off, theirs_off)


def test_index_buffers_are_optional_and_a_wrong_shape_is_a_checkpoint_error(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "text_encoder"
    shutil.copytree(DEMO / "text_encoder", folder)
    state = load_file(folder / "model.safetensors")
    save_file(clap_text.without_index_buffers(state), folder / "model.safetensors")  # as older transformers saved
    tower = checkpoints.load_transformers("ClapTextModelWithProjection", folder, torch.float32, "cpu")
    assert tower.dtype == torch.float32
    state["text_projection.linear2.weight"] = state["text_projection.linear2.weight"][:, :-1].contiguous()
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="text_projection.linear2.weight has shape"):
        checkpoints.load_transformers("ClapTextModelWithProjection", folder, torch.float32, "cpu")


def test_the_demo_generates_without_importing_transformers():
    code = ("import sys, soundsmith\n"
            "pipe = soundsmith.load('demo')\n"
            "pipe('a dog barking', num_inference_steps=2, progress=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'diffusers')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(Path(soundsmith.__file__).resolve().parents[1]),
                               "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
