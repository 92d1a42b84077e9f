"""soundsmith: text-to-audio with the AudioLDM family, exact to diffusers and faster.

    import soundsmith
    pipe = soundsmith.load("audioldm-s-full-v2")        # or a hub id, or a local diffusers folder
    out = pipe("a dog barking in the rain", audio_length_in_s=5.0, seed=0)
    soundsmith.save("dog.wav", out.audios[0], out.sample_rate)

    from soundsmith import edit                           # audio in, audio out
    out = edit.transfer(pipe, "drums.wav", "a jazz drum kit", strength=0.6, seed=0)

    from soundsmith import Request, engine               # one description of any job, one engine that runs it
    out = engine.run(pipe, Request(prompt="rain on a tin roof", duration=5.0, seed=0))

    from soundsmith import AudioLDM2Pipeline              # diffusers scripts: change the import line only
    pipe = AudioLDM2Pipeline.from_pretrained("cvssp/audioldm2", torch_dtype=torch.float16).to("cuda")
"""

import importlib

from .errors import AudioFileError, CheckpointError, InvalidArgument, ModelNotFound, SoundsmithError
from .request import Request

__version__ = "0.1.0"

__all__ = ["AudioLDM", "AudioLDM2", "AudioLDM2Pipeline", "AudioLDMPipeline", "AudioFileError", "DiffusionPipeline",
           "MusicLDM", "MusicLDMPipeline", "AudioOutput", "CheckpointError", "InvalidArgument", "ModelNotFound",
           "Pipeline", "Request", "SoundsmithError", "edit", "engine", "load", "save", "schedulers"]

# torch and the networks load on first use, so `soundsmith --help`, argument errors and Ctrl-C during start-up are
# instant and clean (PEP 562)
_LAZY = {"AudioLDM": "pipelines", "AudioLDM2": "pipelines", "MusicLDM": "pipelines", "Pipeline": "pipelines",
         "load": "pipelines", "AudioOutput": "engine", **{name: "pipelines.compat" for name in (
             "AudioLDMPipeline", "AudioLDM2Pipeline", "MusicLDMPipeline", "DiffusionPipeline")}}
_SUBMODULES = {"edit", "engine", "schedulers"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'soundsmith' has no attribute {name!r}")


def save(path, waveform, sample_rate: int, metadata: dict | None = None, *, overwrite: bool = False):
    """Write a waveform (samples,) to WAV (16-bit) or FLAC, atomically, with optional metadata; an existing file
    is replaced only with overwrite=True. See audio.write."""
    from .audio import write

    return write(path, waveform, sample_rate, metadata, overwrite=overwrite)
