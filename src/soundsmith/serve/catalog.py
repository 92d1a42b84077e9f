"""The models one service may run: the --models list, resolved once at start-up, and what clients can know about
each without loading it (family, sample rate, default steps and length).

A client names a model by its served name only — a known name (`demo`, `audioldm2`), or a folder's base name when
--models listed a folder — so a request can never make the service open a path of the client's choosing.
"""

from dataclasses import dataclass
from math import prod
from pathlib import Path

from .. import checkpoints
from ..errors import InvalidArgument

FAMILIES = {"AudioLDMPipeline": "AudioLDM", "AudioLDM2Pipeline": "AudioLDM 2", "MusicLDMPipeline": "MusicLDM"}


@dataclass(frozen=True)
class Model:
    """A served model. default_steps / default_seconds: what a request that leaves them out runs with (sampler
    steps; seconds of audio); sample_rate in Hz. The lengths follow Pipeline.default_seconds / min_seconds."""

    name: str
    folder: Path
    pipeline_class: str
    family: str
    sample_rate: int
    default_steps: int
    default_seconds: float
    min_seconds: float  # one latent row: the shortest audio the model makes
    ranks: bool  # its CLAP has an audio tower: it can rank candidates itself, and serve as another model's ranker


def resolve_models(names: tuple[str, ...] | None) -> dict[str, Model]:
    """--models → served name → Model, the first being the default. None: the model `soundsmith generate` would
    choose (AudioLDM-S when cached or reachable, else the bundled demo). Unknown or broken models refuse to start
    with one line (ModelNotFound / CheckpointError / InvalidArgument)."""
    if not names:
        from ..checkpoints import default_model

        names = (default_model()[0],)
    served = {}
    for given in names:
        folder = checkpoints.resolve(given)
        local = Path(given).expanduser()
        name = local.resolve().name if local.is_dir() else given
        if name in served:
            raise InvalidArgument(f"--models lists {name!r} twice (a folder is served under its base name)")
        served[name] = describe(name, folder)
    return served


def describe(name: str, folder: Path) -> Model:
    """What the folder's configs say, without loading any weights."""
    from ..models.vae import VAEConfig
    from ..pipelines import PIPELINES
    from ..pipelines.base import model_defaults

    index = checkpoints.read_index(folder, tuple(PIPELINES))
    cls = PIPELINES[index["_class_name"]]
    vocoder = checkpoints.read_json(folder / "vocoder" / "config.json")
    unet = checkpoints.read_json(folder / "unet" / "config.json")
    vae = VAEConfig.from_dict(checkpoints.read_json(folder / "vae" / "config.json"))
    steps, _ = model_defaults(folder, cls.default_steps, cls.default_guidance)
    rate = int(vocoder.get("sampling_rate", 16000))
    hop = prod(vocoder.get("upsample_rates", [5, 4, 2, 2, 2]))
    row = hop / rate * vae.scale_factor  # seconds per latent row, in Pipeline.min_seconds' order of operations
    seconds = (unet.get("sample_size") or 128) * row
    encoder = folder / "text_encoder" / "config.json"
    ranks = encoder.is_file() and checkpoints.read_json(encoder).get("model_type") == "clap" and (
        folder / "feature_extractor").is_dir()
    return Model(name=name, folder=folder, pipeline_class=cls.pipeline_class, family=FAMILIES[cls.pipeline_class],
                 sample_rate=rate, default_steps=steps, default_seconds=seconds, min_seconds=row, ranks=ranks)
