"""From a model name, hub id, folder or original checkpoint file to loaded components.

- `MODELS`: the published checkpoints of the family, by short name.
- `resolve()`: name / hub id / folder / original `.ckpt` `.pth` file → local folder in the diffusers layout
  (downloading only the files a pipeline needs, through huggingface_hub's cache, which honours HF_HOME, HF_ENDPOINT
  and HF_HUB_OFFLINE; original checkpoints are converted once into a cache folder, see convert.py). Before the first
  download, one quick probe (`hub_unreachable`, ≤ 2 s, no retries) decides whether the hub is there at all; the
  verdict holds for the rest of the process, so an offline machine fails at once with one line.
- `read_index()`, `load_state_dict()`, `load_module()`, `load_transformers()`: strict, clear-failing loading of the
  pieces named in `model_index.json`.
"""

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import configs
from .errors import CheckpointError, ModelNotFound
from .quiet import quiet


@dataclass(frozen=True)
class ModelSpec:
    repo: str
    family: str
    about: str
    licence: str
    file: str | None = None  # an original checkpoint in `repo` (converted on first use) instead of a diffusers folder


MODELS: dict[str, ModelSpec] = {
    "audioldm-s-full": ModelSpec("cvssp/audioldm-s-full", "AudioLDM", "AudioLDM S, 185M UNet", "CC-BY-NC-SA-4.0"),
    "audioldm-s-full-v2": ModelSpec("cvssp/audioldm-s-full-v2", "AudioLDM", "AudioLDM S v2, 185M UNet",
                                    "CC-BY-NC-SA-4.0"),
    "audioldm-m-full": ModelSpec("cvssp/audioldm-m-full", "AudioLDM", "AudioLDM M, 416M UNet", "CC-BY-NC-SA-4.0"),
    "audioldm-l-full": ModelSpec("cvssp/audioldm-l-full", "AudioLDM", "AudioLDM L, 739M UNet", "CC-BY-NC-SA-4.0"),
    "audioldm2": ModelSpec("cvssp/audioldm2", "AudioLDM 2", "text-to-audio, 350M UNet", "CC-BY-NC-SA-4.0"),
    "audioldm2-large": ModelSpec("cvssp/audioldm2-large", "AudioLDM 2", "text-to-audio, 750M UNet",
                                 "CC-BY-NC-SA-4.0"),
    "audioldm2-music": ModelSpec("cvssp/audioldm2-music", "AudioLDM 2", "text-to-music, 350M UNet",
                                 "CC-BY-NC-SA-4.0"),
    "audioldm2-gigaspeech": ModelSpec("anhnct/audioldm2_gigaspeech", "AudioLDM 2", "text-to-speech (GigaSpeech)",
                                      "CC-BY-NC-SA-4.0"),
    "audioldm2-ljspeech": ModelSpec("anhnct/audioldm2_ljspeech", "AudioLDM 2", "text-to-speech (LJSpeech)",
                                    "CC-BY-NC-SA-4.0"),
    "musicldm": ModelSpec("ucsd-reach/musicldm", "MusicLDM", "text-to-music, 185M UNet", "CC-BY-NC-SA-4.0"),
    "audioldm-48k": ModelSpec("haoheliu/audioldm_48k", "AudioLDM", "48 kHz text-to-audio (original checkpoint, "
                              "converted on first use)", "CC-BY-NC-SA-4.0", file="audioldm_48k.pth"),
}

DEMO = "demo"  # the bundled demo model's name
DEMO_FOLDER = Path(__file__).resolve().parent / "demo"  # package data: a small AudioLDM trained by soundsmith
DEFAULT = "audioldm-s-full-v2"  # the real checkpoint `soundsmith generate` prefers


HUB_PROBE_TIMEOUT = 2.0  # seconds the one reachability probe may take
_hub_answers: dict[str, str | None] = {}  # endpoint → None (it answered) or why not; remembered for the process


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """None when the Hugging Face hub (HF_ENDPOINT) answers, else a short reason ("HF_HUB_OFFLINE is set", "no
    answer within 2 s", "ConnectError"). One request, no retries, at most `timeout` seconds (it runs in a daemon
    thread, so a hanging DNS lookup cannot hold it up); the verdict is remembered for the rest of the process."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = constants.ENDPOINT
    if endpoint not in _hub_answers:
        _hub_answers[endpoint] = _probe(endpoint, timeout)
    return _hub_answers[endpoint]


def _probe(endpoint: str, timeout: float) -> str | None:
    import threading

    from huggingface_hub.utils import get_session

    answer = [f"no answer within {timeout:g} s"]

    def ask():
        try:
            get_session().head(f"{endpoint}/api/models/{MODELS[DEFAULT].repo}", timeout=timeout)
            answer[0] = None  # any HTTP status means the hub is there
        except Exception as exc:  # refused, DNS failure, TLS failure, timeout …
            answer[0] = type(exc).__name__

    thread = threading.Thread(target=ask, name="soundsmith-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return answer[0]


def default_model() -> tuple[str, str]:
    """The model to use when none is named, and why: DEFAULT when cached, else the first cached AudioLDM-family
    checkpoint of MODELS, else DEFAULT when the hub answers the probe (it will be downloaded), else the bundled
    demo (offline, or the hub unreachable)."""
    if is_cached(DEFAULT):
        return DEFAULT, "cached"
    for name in MODELS:
        if is_cached(name):
            return name, "cached"
    why = hub_unreachable()
    if why is None:
        return DEFAULT, "not cached; downloading from the hub"
    return DEMO, f"no real checkpoint is cached and the hub is unreachable ({why}): the bundled demo model"


# what a pipeline folder may contain that we need; everything else on the hub repo (fp16 copies, onnx, flax,
# original .ckpt files) is not downloaded
_NEEDED_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin")


def files_to_fetch(repo_files: list[str]) -> list[str]:
    """Choose the files of a diffusers pipeline repo to download: configs, tokenizer files and one weights format
    per component (safetensors when present, else .bin), no fp16/onnx/flax variants."""
    chosen = []
    by_folder: dict[str, list[str]] = {}
    for f in repo_files:
        folder = f.rsplit("/", 1)[0] if "/" in f else ""
        if not f.endswith(_NEEDED_SUFFIXES) or any(v in f for v in (".fp16.", ".onnx", "flax_", ".msgpack")):
            continue
        by_folder.setdefault(folder, []).append(f)
    for folder, files in by_folder.items():
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        for f in files:
            if f.endswith(".bin") and has_safetensors:
                continue
            if folder == "" and not f.endswith(".json"):
                continue  # top-level checkpoints of the original repos (e.g. *.ckpt mirrors) are not needed
            chosen.append(f)
    return sorted(chosen)


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def resolve(name_or_path: str) -> Path:
    """A short name (`audioldm2`), a hub id (`cvssp/audioldm2`) or a local folder → the local folder.

    Raises ModelNotFound with one line saying what was tried and how to get the model."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        from . import convert

        if convert.is_checkpoint_file(path):
            return convert.converted_folder(path)
        raise ModelNotFound(f"{name!r} is a file, not a model folder nor an original checkpoint "
                            f"({', '.join(convert.SUFFIXES)}): give a folder in the diffusers layout, a hub id, "
                            f"or one of: {', '.join(MODELS)}")
    if name == DEMO:
        if not (DEMO_FOLDER / "model_index.json").is_file():
            raise ModelNotFound(f"the bundled demo model is missing from this installation ({DEMO_FOLDER}); "
                                "reinstall soundsmith")
        return DEMO_FOLDER
    if name in MODELS and MODELS[name].file is not None:
        from . import convert

        return convert.converted_folder(_download_file(MODELS[name], name), name=name)
    if name in MODELS:
        return _download(MODELS[name].repo, name)
    if _HUB_ID.match(name):
        return _download(name, name, also=f"there is no folder {name!r} here, and ")
    if "/" in name or os.sep in name or name.startswith((".", "~")):
        raise ModelNotFound(f"model folder {name!r} does not exist (give a folder in the diffusers layout, "
                            f"a hub id, or one of: {', '.join(MODELS)})")
    raise ModelNotFound(f"unknown model {name!r}.{_suggest(name)} Known names: {', '.join(MODELS)}; "
                        f"a hub id (owner/name) or a local folder also works")


def _download(repo: str, name: str, also: str = "") -> Path:
    from huggingface_hub import HfApi, constants, snapshot_download

    hint = f"run `soundsmith download {name}` where the hub is reachable, or pass a local folder with -m"
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached (or cached incompletely): fall through to the hub
        pass
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFound(f"{also}model {name!r} ({repo}) is not in the local cache {constants.HF_HUB_CACHE} "
                            f"and HF_HUB_OFFLINE is set: {hint}")
    why = hub_unreachable()
    if why is not None:
        raise ModelNotFound(f"{also}model {name!r} ({repo}) is not cached and the hub {constants.ENDPOINT} is "
                            f"unreachable ({why}): {hint}")
    try:
        with quiet(download_bars=True):  # no retry lines; the download's own progress stays
            files = files_to_fetch(HfApi().list_repo_files(repo))
            return Path(snapshot_download(repo, allow_patterns=files))
    except Exception as exc:  # network dropped, repository missing or gated
        raise ModelNotFound(f"{also}model {name!r} ({repo}) is not cached and could not be downloaded "
                            f"({type(exc).__name__}): {hint}") from None


def _download_file(spec: ModelSpec, name: str) -> Path:
    """The original checkpoint file of a MODELS entry, from the huggingface cache or the hub."""
    from huggingface_hub import constants, hf_hub_download

    hint = f"run `soundsmith download {name}` where the hub is reachable, or convert the file yourself " \
           f"(`soundsmith convert {spec.file} --out FOLDER`) and pass the folder with -m"
    try:
        return Path(hf_hub_download(spec.repo, spec.file, local_files_only=True))
    except Exception:
        pass
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFound(f"model {name!r} ({spec.repo}/{spec.file}) is not in the local cache "
                            f"{constants.HF_HUB_CACHE} and HF_HUB_OFFLINE is set: {hint}")
    why = hub_unreachable()
    if why is not None:
        raise ModelNotFound(f"model {name!r} ({spec.repo}/{spec.file}) is not cached and the hub "
                            f"{constants.ENDPOINT} is unreachable ({why}): {hint}")
    try:
        with quiet(download_bars=True):  # no retry lines; the download's own progress stays
            return Path(hf_hub_download(spec.repo, spec.file))
    except Exception as exc:
        raise ModelNotFound(f"model {name!r} ({spec.repo}/{spec.file}) is not cached and could not be downloaded "
                            f"({type(exc).__name__}): {hint}") from None


def is_cached(name: str) -> bool:
    """Whether a known model's snapshot (or original checkpoint file) is in the local huggingface cache:
    HF_HUB_CACHE/models--owner--name with refs/main naming a snapshot that holds a model_index.json (or the file).
    Reads the folder layout directly (never the network, and without importing huggingface_hub's download
    machinery: `soundsmith generate` with no -m asks this for every known model before it starts)."""
    from huggingface_hub import constants

    spec = MODELS[name]
    repo = Path(constants.HF_HUB_CACHE) / f"models--{spec.repo.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return False
    return bool(revision) and (repo / "snapshots" / revision / (spec.file or "model_index.json")).is_file()


def read_json(path: Path) -> dict:
    """A config file of a model folder: a JSON object, or CheckpointError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the folder is not a complete diffusers checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a JSON file") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise CheckpointError(f"{path} is not valid JSON ({detail})") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror})") from None
    return configs.config_object(value, str(path))


def read_index(folder: Path, allowed: tuple[str, ...]) -> dict:
    """model_index.json of a pipeline folder; its `_class_name` must be one of `allowed`."""
    index = read_json(folder / "model_index.json")
    kind = index.get("_class_name")
    if not isinstance(kind, str) or kind not in allowed:
        what = f"a {kind}" if isinstance(kind, str) and kind else f"an unnamed ({configs.show(kind)})"
        raise CheckpointError(f"{folder} holds {what} pipeline, not one soundsmith runs "
                              f"(allowed: {', '.join(allowed)})")
    return index


def component_class(folder: Path, index: dict, key: str, allowed: tuple[str, ...] | None = None,
                    required: bool = True) -> str | None:
    """The class model_index.json names for component `key`: its entry is [library, class name] (two strings, or
    null for an absent optional component). A missing or null entry is CheckpointError when `required`, else None;
    a class outside `allowed` is CheckpointError."""
    entry = index.get(key)
    where = f"{folder}/model_index.json"
    if entry is None or isinstance(entry, list) and len(entry) == 2 and entry[1] is None:
        if required:
            raise CheckpointError(f"{where} has no {key!r} component")
        return None
    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
        raise CheckpointError(f"{where}: {key}={configs.show(entry)} is not a component entry "
                              f"([library, class name], e.g. [\"diffusers\", \"AutoencoderKL\"])")
    if allowed is not None and entry[1] not in allowed:
        raise CheckpointError(f"{folder}: {key} is {entry[1]!r}, expected {' or '.join(allowed)}")
    return entry[1]


_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def rename_legacy_vae_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old VAE attention names (`…attentions.0.query.weight`, 1×1-conv shaped) → `to_q/to_k/to_v/to_out.0`."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in _LEGACY_ATTENTION:
            parts[-2] = _LEGACY_ATTENTION[parts[-2]]
            key = ".".join(parts)
            if value.ndim == 4 and key.endswith("weight"):
                value = value[:, :, 0, 0]
        out[key] = value
    return out


def _weight_files(folder: Path, stem: str) -> list[Path]:
    for suffix in (".safetensors", ".bin"):
        single = folder / f"{stem}{suffix}"
        if single.exists():
            return [single]
        index = folder / f"{stem}{suffix}.index.json"
        if index.exists():
            return [folder / name for name in _shards(index, suffix)]
    raise CheckpointError(f"{folder} has no weights ({stem}.safetensors or {stem}.bin)")


def _shards(index: Path, suffix: str) -> list[str]:
    """The shard files a `*.index.json` names in its weight_map, checked before any is opened: plain relative
    names inside the component folder (no absolute path, no `..`), with the index's own suffix."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: weight_map={configs.show(weight_map)} is not a mapping of tensor names "
                              "to shard files")
    shards = sorted({str(name) for name in weight_map.values()})
    for name in weight_map.values():
        parts = str(name).replace("\\", "/").split("/")
        if not isinstance(name, str) or not name.endswith(suffix) or os.path.isabs(name) or ".." in parts \
                or "" in parts or ":" in name:
            raise CheckpointError(f"{index} names the shard {configs.show(name)}: shards must be {suffix} files inside "
                                  f"{index.parent} (no absolute paths, no '..')")
    return shards


def load_state_dict(folder: Path, stem: str) -> dict[str, torch.Tensor]:
    """All tensors of a component folder (safetensors or .bin, single or sharded), on CPU."""
    state = {}
    for file in _weight_files(folder, stem):
        try:
            if file.suffix == ".safetensors":
                from safetensors.torch import load_file

                state.update(load_file(file))
            else:
                state.update(torch.load(file, map_location="cpu", weights_only=True))
        except FileNotFoundError:
            raise CheckpointError(f"weights file {file} is missing (listed in the shard index)") from None
        except Exception as exc:
            raise CheckpointError(f"weights file {file} is truncated or corrupted "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); download it again") from None
    return state


def _key_report(missing, unexpected) -> str:
    def show(keys):
        keys = sorted(keys)
        return ", ".join(keys[:5]) + (f" … ({len(keys)} in all)" if len(keys) > 5 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    return "; ".join(parts)


def load_module(module_cls, config, folder: Path, stem: str, dtype: torch.dtype, device,
                fix_keys=None) -> torch.nn.Module:
    """Build one of our modules on the meta device from `config`, then fill it with the folder's weights, strictly."""
    state = load_state_dict(folder, stem)
    if fix_keys is not None:
        state = fix_keys(state)
    try:
        with torch.device("meta"):
            module = module_cls(config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        # a config every key of which passed its own check, but whose combination builds no network
        raise CheckpointError(f"{folder}: its config describes no buildable {module_cls.__name__} "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    shapes = {key: tensor.shape for key, tensor in module.state_dict().items()}  # once: it walks every module
    missing, unexpected = set(shapes) - set(state), set(state) - set(shapes)
    if missing or unexpected:
        raise CheckpointError(f"{folder} does not match its config: {_key_report(missing, unexpected)}")
    for key, tensor in state.items():
        want = shapes[key]
        if tensor.shape != want:
            raise CheckpointError(f"{folder}: {key} has shape {tuple(tensor.shape)}, the config implies {tuple(want)}")
    module.load_state_dict(state, strict=True, assign=True)
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


# transformers classes a pipeline folder may name; anything else is refused rather than imported by name
TRANSFORMERS_CLASSES = {
    "ClapTextModelWithProjection", "ClapModel", "T5EncoderModel", "GPT2Model", "GPT2LMHeadModel", "VitsModel",
    "RobertaTokenizer", "RobertaTokenizerFast", "BertTokenizer", "BertTokenizerFast", "T5Tokenizer",
    "T5TokenizerFast", "VitsTokenizer",
    "ClapFeatureExtractor",
}


def _dtype_argument(dtype: torch.dtype | None) -> dict:
    """from_pretrained's dtype keyword: `dtype` since transformers 4.56, `torch_dtype` before (deprecated after)."""
    import transformers

    major, minor = (int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def load_transformers(class_name: str, folder: Path, dtype: torch.dtype | None = None, device=None):
    """A model, tokenizer or feature extractor that transformers saved in `folder`; models load strictly (a missing
    weight is an error, not a random initialisation).

    CLAP's text tower (ClapTextModelWithProjection) and its tokenizer (a RobertaTokenizer folder with a byte-level BPE
    tokenizer.json, or a BertTokenizer one with a WordPiece tokenizer.json, as the demo's sentence tower has) load as
    soundsmith's own (models/clap_text.py: same weights, same ids, outputs equal to float
    rounding) without importing transformers, whose model code takes ~2.3 s to import: AudioLDM and the bundled demo
    then start without it. Every other class is transformers' own."""
    if class_name not in TRANSFORMERS_CLASSES:
        raise CheckpointError(f"{folder}: component class {class_name!r} is not supported "
                              f"(allowed: {', '.join(sorted(TRANSFORMERS_CLASSES))})")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is missing: the checkpoint has no {folder.name} component")
    if (folder / "config.json").is_file():
        configs.check_transformers_config(read_json(folder / "config.json"), str(folder / "config.json"))
    from .models import clap_text

    if class_name == "ClapTextModelWithProjection":
        config = clap_text.ClapTextConfig.from_dict(read_json(folder / "config.json"), str(folder / "config.json"))
        return load_module(clap_text.ClapTextTower, config, folder, "model", dtype or torch.float32, device,
                           fix_keys=clap_text.without_index_buffers)
    if class_name in ("RobertaTokenizer", "RobertaTokenizerFast", "BertTokenizer", "BertTokenizerFast") \
            and clap_text.readable_tokenizer(folder):
        return clap_text.BpeTokenizer.from_folder(folder)
    import transformers

    try:
        with quiet():  # no "Loading weights" bar, no advisory warnings
            cls = getattr(transformers, class_name)
            if not class_name.endswith(("Model", "WithProjection", "LMHeadModel")):
                if not class_name.endswith("Fast") and hasattr(transformers, class_name + "Fast") \
                        and (folder / "tokenizer.json").is_file() and not (folder / "vocab.json").is_file():
                    cls = getattr(transformers, class_name + "Fast")  # transformers 4: the slow class needs vocab.json
                return cls.from_pretrained(folder)
            _weight_files(folder, "model")  # a clear error before transformers' own when no weights exist
            model, info = cls.from_pretrained(folder, output_loading_info=True, **_dtype_argument(dtype))
    except (CheckpointError, ModelNotFound):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(f"{folder} could not be loaded as {class_name} "
                              f"({type(exc).__name__}: {first}); the files may be truncated or corrupted") from None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        detail = _key_report(missing, []) or f"mismatched shapes: {mismatched[:3]}"
        raise CheckpointError(f"{folder} does not match {class_name}: {detail}")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)  # transformers 4 kept some in float32
