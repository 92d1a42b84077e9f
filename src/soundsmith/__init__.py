"""soundsmith: text-to-audio with the AudioLDM family, exact to diffusers and faster.

    import soundsmith
    pipe = soundsmith.load("audioldm-s-full-v2")        # or a hub id, or a local diffusers folder
    out = pipe("a dog barking in the rain", audio_length_in_s=5.0, seed=0)
    soundsmith.save("dog.wav", out.audios[0], out.sample_rate)

    from soundsmith import edit                           # audio in, audio out
    out = edit.transfer(pipe, "drums.wav", "a jazz drum kit", strength=0.6, seed=0)

    from soundsmith import Request, engine               # one description of any job, one engine that runs it
    out = engine.run(pipe, Request(prompt="rain on a tin roof", duration=5.0, seed=0))
"""

from .errors import AudioFileError, CheckpointError, InvalidArgument, ModelNotFound, SoundsmithError
from .request import Request
from .pipelines import AudioLDM, AudioLDM2, AudioOutput, MusicLDM, Pipeline, load
from . import edit, engine  # noqa: E402 (after pipelines: edit builds on them)

__version__ = "0.1.0"

__all__ = ["AudioLDM", "AudioLDM2", "AudioFileError", "MusicLDM", "AudioOutput", "CheckpointError", "InvalidArgument",
           "ModelNotFound", "Pipeline", "Request", "SoundsmithError", "edit", "engine", "load", "save"]


def save(path, waveform, sample_rate: int, metadata: dict | None = None, *, overwrite: bool = False):
    """Write a waveform (samples,) to WAV (16-bit) or FLAC, atomically, with optional metadata; an existing file
    is replaced only with overwrite=True. See audio.write."""
    from .audio import write

    return write(path, waveform, sample_rate, metadata, overwrite=overwrite)
