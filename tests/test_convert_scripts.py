"""soundsmith's conversion equals diffusers' conversion scripts, run on the same original-layout checkpoints.

The scripts (scripts/convert_original_{audioldm,musicldm,audioldm2}_to_diffusers.py) live in the diffusers git
repository, not in its pip package, and soundsmith does not copy them: this test imports them from a diffusers
checkout named by SOUNDSMITH_DIFFUSERS_REPO (the repository root, or a folder holding scripts/) and is skipped
without one. Run it with, e.g.:

    git clone --depth 1 https://github.com/huggingface/diffusers /tmp/diffusers
    SOUNDSMITH_DIFFUSERS_REPO=/tmp/diffusers python -m pytest tests/test_convert_scripts.py

Where the scripts reach the hub, the test hands them the tiny checkpoint's equivalents (patched here, like the
diffusers oracle elsewhere):
- `ClapTextConfig` / `ClapConfig.from_pretrained("laion/clap-htsat-unfused")`, `T5Config.from_pretrained(
  "google/flan-t5-large")`, `GPT2Config.from_pretrained("gpt2")`: the configs of the tiny towers (the published
  values for real checkpoints); the scripts' widening of the audio tower to HTSAT-base (`audio_config.update`) is
  ignored for the tiny tower;
- `AutoTokenizer` / `AutoFeatureExtractor.from_pretrained`: the tiny test tokenizers;
- the AudioLDM script names the VAE attention query/key/value/proj_attn and `load_state_dict`s that into today's
  AutoencoderKL, which has to_q/…/to_out.0: AutoencoderKL.load_state_dict applies diffusers' own legacy-name fix first
  (`_fix_state_dict_keys_on_load`, what from_pretrained applies to such files);
- `original_config_file` is given as YAML text (the scripts `yaml.safe_load` the argument itself) describing the
  tiny architecture in the scripts' DEFAULT_CONFIG form.
The folders are compared component by component: every config as diffusers / transformers load it, and every tensor.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from soundsmith import convert

original = pytest.importorskip("original")
diffusers = pytest.importorskip("diffusers")
ROOT = os.environ.get("SOUNDSMITH_DIFFUSERS_REPO")
if not ROOT or not original.available():
    pytest.skip("set SOUNDSMITH_DIFFUSERS_REPO to a diffusers checkout (and install the original packages) to "
                "compare with diffusers' conversion scripts", allow_module_level=True)

from checkpoints import build_audioldm, build_audioldm2, build_musicldm  # noqa: E402

SCRIPTS = {"audioldm": ("convert_original_audioldm_to_diffusers", "load_pipeline_from_original_audioldm_ckpt"),
           "musicldm": ("convert_original_musicldm_to_diffusers", "load_pipeline_from_original_MusicLDM_ckpt"),
           "audioldm2": ("convert_original_audioldm2_to_diffusers", "load_pipeline_from_original_AudioLDM2_ckpt")}


def _script(name: str):
    for folder in (Path(ROOT) / "scripts", Path(ROOT)):
        file = folder / f"{name}.py"
        if file.is_file():
            spec = importlib.util.spec_from_file_location(f"diffusers_script_{name}", file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    pytest.fail(f"{name}.py is not in {ROOT} or {ROOT}/scripts")


def _yaml(family: str) -> str:
    import yaml

    vocoder = original.TINY_CONFIG["model"]["params"]["vocoder_config"]["params"]
    unet = {k: original.TINY_UNET[k] for k in ("in_channels", "out_channels", "model_channels",
                                               "attention_resolutions", "num_res_blocks", "channel_mult",
                                               "num_head_channels")}
    if family == "audioldm2":
        unet.update(context_dim=[None, original.GPT2_WIDTH, original.T5_WIDTH], transformer_depth=1)
    else:
        unet.update(extra_film_condition_dim=original.CLAP_JOINT, extra_film_use_concat=True)
    ddconfig = {k: original.TINY_DDCONFIG[k] for k in ("z_channels", "resolution", "in_channels", "out_ch", "ch",
                                                        "ch_mult", "num_res_blocks")}
    params = {"linear_start": 0.0015, "linear_end": 0.0195, "timesteps": 1000, "channels": 4, "scale_by_std": True,
              "unet_config": {"params": unet},
              "first_stage_config": {"params": {"embed_dim": ddconfig["z_channels"], "ddconfig": ddconfig}},
              "vocoder_config": {"params": vocoder}}
    if family == "audioldm2":
        params["cond_stage_config"] = {"crossattn_audiomae_generated": {"params": {
            "sequence_gen_length": 8, "sequence_input_embed_dim": [original.CLAP_JOINT, original.T5_WIDTH]}}}
    return yaml.safe_dump({"model": {"params": params}})


def _hub_stand_ins(monkeypatch, ours: Path, tokenizers: Path) -> None:
    import transformers

    def config_of(sub: str, cls, drop=()):
        data = json.loads((ours / sub / "config.json").read_text())
        return cls(**{k: v for k, v in data.items() if k not in drop})

    class TinyAudioConfig(transformers.ClapAudioConfig):
        def update(self, values):  # the scripts' HTSAT-base widths do not apply to the tiny tower
            pass

    def clap_config(cls, name, **kwargs):
        config = config_of("text_encoder", transformers.ClapConfig)
        config.audio_config = TinyAudioConfig(**config.audio_config.to_dict())
        return config

    load_tokenizer = transformers.AutoTokenizer.__dict__["from_pretrained"].__func__  # before the patch below
    load_extractor = transformers.AutoFeatureExtractor.__dict__["from_pretrained"].__func__

    def tokenizer(cls, name, **kwargs):
        sub = "tokenizer_2" if "t5" in str(name) else "tokenizer"
        return load_tokenizer(cls, tokenizers / sub, **kwargs)

    monkeypatch.setattr(transformers.ClapTextConfig, "from_pretrained",
                        classmethod(lambda cls, name, **kw: config_of("text_encoder", transformers.ClapTextConfig)))
    monkeypatch.setattr(transformers.ClapConfig, "from_pretrained", classmethod(clap_config))
    monkeypatch.setattr(transformers.T5Config, "from_pretrained",
                        classmethod(lambda cls, name, **kw: config_of("text_encoder_2", transformers.T5Config)))
    monkeypatch.setattr(transformers.GPT2Config, "from_pretrained", classmethod(
        lambda cls, name, **kw: config_of("language_model", transformers.GPT2Config, drop=("max_new_tokens",))))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", classmethod(tokenizer))
    monkeypatch.setattr(transformers.AutoFeatureExtractor, "from_pretrained",
                        classmethod(lambda cls, name, **kw: load_extractor(cls, tokenizers / "feature_extractor")))


def _components(folder: Path) -> dict:
    """{component: (config without bookkeeping keys, state dict)} as diffusers / transformers load the folder."""
    import transformers

    from soundsmith.checkpoints import rename_legacy_vae_keys

    index = json.loads((folder / "model_index.json").read_text())
    out = {}
    for name, entry in index.items():
        if name.startswith("_") or entry[1] is None or "Tokenizer" in entry[1] or "FeatureExtractor" in entry[1]:
            continue
        library = diffusers if entry[0] != "transformers" else transformers
        cls = getattr(library, entry[1])
        if name == "scheduler":
            out[name] = ({k: v for k, v in cls.from_pretrained(folder / name).config.items()
                          if not k.startswith("_")}, {})
            continue
        model = cls.from_pretrained(folder / name)
        config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
        drop = ("_", "transformers_version", "architectures", "dtype", "torch_dtype")
        config = {k: v for k, v in config.items() if not k.startswith(drop)}
        state = model.state_dict()
        out[name] = (config, rename_legacy_vae_keys(state) if name == "vae" else state)
    return out


@pytest.mark.parametrize("family", ["audioldm", "musicldm", "audioldm2"])
def test_converted_folder_equals_the_diffusers_conversion_script(family, tmp_path, monkeypatch):
    state, _ = original.audioldm2_checkpoint() if family == "audioldm2" else original.audioldm_checkpoint(family)
    tokenizers = {"audioldm": build_audioldm, "musicldm": build_musicldm,
                  "audioldm2": build_audioldm2}[family](tmp_path / "tokenizers")
    ckpt = tmp_path / f"{family}.ckpt"
    torch.save({"state_dict": state}, ckpt)
    (tmp_path / "config.json").write_text(json.dumps(original.TINY_CONFIG))
    ours = convert.convert(ckpt, tmp_path / "ours", config=tmp_path / "config.json", family=family,
                           tokenizers_from=tokenizers)

    _hub_stand_ins(monkeypatch, ours, tokenizers)
    module, function = SCRIPTS[family]
    script = _script(module)

    def renaming_legacy_keys(self, state_dict, *args, **kwargs):
        state_dict = dict(state_dict)
        self._fix_state_dict_keys_on_load(state_dict)  # renames in place
        return torch.nn.Module.load_state_dict(self, state_dict, *args, **kwargs)

    monkeypatch.setattr(diffusers.AutoencoderKL, "load_state_dict", renaming_legacy_keys, raising=False)
    pipe = getattr(script, function)(str(ckpt), original_config_file=_yaml(family), device="cpu")
    pipe.save_pretrained(tmp_path / "script", safe_serialization=True)
    monkeypatch.undo()  # the stand-ins only serve the script

    expected, got = _components(tmp_path / "script"), _components(ours)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name][0] == expected[name][0], name
        assert got[name][1].keys() == expected[name][1].keys(), name
        for key, tensor in expected[name][1].items():
            assert torch.equal(got[name][1][key], tensor), f"{name}: {key}"
