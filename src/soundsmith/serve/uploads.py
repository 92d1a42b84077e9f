"""Audio a client sends for the audio tasks (transfer, inpaint, upscale, extend, reconstruct): received into the data
folder under a name the service chooses, checked by its content — the first bytes say WAV, FLAC, Ogg or MP3, and the
whole file must decode — never by the client's file name or content type. A request then refers to it by id."""

import os
import secrets
import time
from pathlib import Path

import soundfile

from ..errors import InvalidArgument
from .store import Upload, new_id

FORMATS = ("wav", "flac", "ogg", "mp3")


class UnsupportedAudio(InvalidArgument):
    """The bytes are not one of FORMATS (answered 415)."""


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file announce: RIFF/RF64 …WAVE, fLaC, OggS, an ID3 tag or an MPEG audio
    frame header (11 sync bits, a layer) → "wav" | "flac" | "ogg" | "mp3", else None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "mp3"
    return None


def folder_of(data: Path) -> Path:
    folder = data / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def incoming(data: Path) -> Path:
    """A fresh temporary path in the uploads folder for the bytes being received."""
    return folder_of(data) / f".incoming-{secrets.token_hex(8)}"


def accept(data: Path, received: Path, size: int) -> Upload:
    """Check the received file by content and keep it → Upload (not yet in the store). The temporary file is
    removed whatever happens."""
    try:
        with open(received, "rb") as f:
            head = f.read(16)
        kind = sniff(head)
        if size == 0:
            raise InvalidArgument("the upload is empty: send the audio file's bytes")
        if kind is None:
            raise UnsupportedAudio(f"the upload is not audio this server takes (allowed: {', '.join(FORMATS)}, "
                                   f"recognised by content)")
        try:
            with soundfile.SoundFile(received) as f:
                rate, channels = f.samplerate, f.channels
                frames = sum(len(block) for block in f.blocks(65536, dtype="float32"))
        except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            detail = " ".join((getattr(exc, "error_string", None) or str(exc)).split())[:120]
            raise InvalidArgument(f"the upload looks like {kind} but does not decode ({detail})") from None
        if frames == 0:
            raise InvalidArgument("the upload holds no audio samples")
        upload = Upload(id=new_id("upl"), file="", format=kind, seconds=frames / rate, sample_rate=rate,
                        channels=channels, bytes=size, created=time.time())
        upload.file = f"{upload.id}.{kind}"
        with open(received, "rb") as f:
            os.fsync(f.fileno())
        os.replace(received, folder_of(data) / upload.file)
        return upload
    finally:
        if received.exists():
            received.unlink()


def path_of(data: Path, upload: Upload) -> Path:
    """Where an upload's bytes are (a name the service chose: `upl_<hex>.<format>`)."""
    return folder_of(data) / upload.file
