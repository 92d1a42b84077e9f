"""Music from MIDI we write ourselves, rendered with fluidsynth and a General MIDI SoundFont.

Melodies (a random walk on a major or minor scale, optionally over block chords), drum patterns, bands (melody +
bass + drums) and bell peals. Everything a caption says (instrument, tempo, key, mode, register, drum style) is a
parameter of the notes, so captions are exact. Times in beats or seconds as named; pitches are MIDI note numbers.
"""

import os
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9  # General MIDI channel 10
SOUNDFONTS = (  # searched in this order; timgm6mb-soundfont is what scripts/install-data-deps installs
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
)
SOUNDFONT_LICENCES = {"TimGM6mb.sf2": "GPL-2", "FluidR3_GM.sf2": "MIT"}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
REGISTER_ROOT = {"low": 48, "middle": 60, "high": 72}  # MIDI note of the tonic's octave


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program with the words captions use for it."""

    program: int
    noun: str  # "saxophone"
    category: str  # evaluation category of a solo clip: "piano", "bell" or "other"
    registers: tuple = ("low", "middle", "high")
    chords: bool = False  # can play block chords


INSTRUMENTS = (
    Instrument(0, "piano", "piano", chords=True),
    Instrument(1, "bright piano", "piano", chords=True),
    Instrument(2, "electric grand piano", "piano", chords=True),
    Instrument(3, "honky-tonk piano", "piano", chords=True),
    Instrument(4, "electric piano", "other", chords=True),
    Instrument(6, "harpsichord", "other", chords=True),
    Instrument(11, "vibraphone", "other", ("middle", "high")),
    Instrument(13, "xylophone", "other", ("middle", "high")),
    Instrument(16, "organ", "other", chords=True),
    Instrument(19, "church organ", "other", chords=True),
    Instrument(21, "accordion", "other", ("middle", "high"), chords=True),
    Instrument(22, "harmonica", "other", ("middle", "high")),
    Instrument(24, "acoustic guitar", "other", ("low", "middle"), chords=True),
    Instrument(26, "jazz guitar", "other", ("low", "middle"), chords=True),
    Instrument(27, "electric guitar", "other", ("low", "middle"), chords=True),
    Instrument(30, "distorted electric guitar", "other", ("low", "middle"), chords=True),
    Instrument(33, "bass guitar", "other", ("low",)),
    Instrument(40, "violin", "other", ("middle", "high")),
    Instrument(42, "cello", "other", ("low", "middle")),
    Instrument(46, "harp", "other", chords=True),
    Instrument(48, "string ensemble", "other", chords=True),
    Instrument(52, "choir", "other", ("middle",), chords=True),
    Instrument(56, "trumpet", "other", ("middle", "high")),
    Instrument(57, "trombone", "other", ("low", "middle")),
    Instrument(60, "french horn", "other", ("low", "middle")),
    Instrument(65, "saxophone", "other", ("low", "middle")),
    Instrument(68, "oboe", "other", ("middle", "high")),
    Instrument(71, "clarinet", "other", ("low", "middle", "high")),
    Instrument(73, "flute", "other", ("middle", "high")),
    Instrument(75, "pan flute", "other", ("middle", "high")),
    Instrument(80, "synthesizer lead", "other"),
    Instrument(88, "synth pad", "other", ("low", "middle"), chords=True),
    Instrument(104, "sitar", "other", ("middle",)),
    Instrument(105, "banjo", "other", ("middle",)),
    Instrument(108, "kalimba", "other", ("middle", "high")),
)
PIANOS = tuple(i for i in INSTRUMENTS if i.category == "piano")
OTHERS = tuple(i for i in INSTRUMENTS if i.category == "other")
BAND_LEADS = tuple(i for i in INSTRUMENTS if i.program in (0, 4, 16, 24, 27, 30, 56, 65, 73, 80))
BASS = 33
BELLS = (  # bell and chime programs: the "bell" category
    Instrument(14, "tubular bells", "bell", ("middle", "high")),
    Instrument(9, "glockenspiel", "bell", ("middle", "high")),
    Instrument(10, "music box", "bell", ("middle", "high")),
    Instrument(8, "celesta", "bell", ("middle", "high")),
    Instrument(112, "small bells", "bell", ("middle", "high")),
)

# General MIDI percussion keys
KICK, SIDE_STICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, COWBELL = 36, 37, 38, 39, 42, 44, 46, 49, 51, 56
TOMS = (50, 47, 45, 43)
# steps per beat, beats per bar, tempo range (bpm) and one bar of steps per drum ("x" loud, "o" soft, "." rest)
DRUM_STYLES = {
    "rock": (4, 4, (90, 150), {KICK: "x.......x.x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."}),
    "disco": (4, 4, (110, 130), {KICK: "x...x...x...x...", SNARE: "....x.......x...", HAT: "x...x...x...x...",
                                 OPEN_HAT: "..x...x...x...x."}),
    "funk": (4, 4, (90, 115), {KICK: "x..x..x...x..x..", SNARE: "....x..o.o..x..o", HAT: "xoxoxoxoxoxoxoxo"}),
    "hip hop": (4, 4, (78, 98), {KICK: "x......x..x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."}),
    "waltz": (4, 3, (80, 150), {KICK: "x...........", SNARE: "....o...o...", HAT: "x...x...x..."}),
    "bossa nova": (4, 4, (120, 145), {KICK: "x..xx..xx..xx..x", SIDE_STICK: "x..x..x...x..x..",
                                      HAT: "xoxoxoxoxoxoxoxo"}),
    "march": (4, 4, (100, 124), {KICK: "x.......x.......", SNARE: "x.ox.ox.x.oxx.x."}),
    "jazz": (3, 4, (100, 180), {RIDE: "x..x.xx..x.x", PEDAL_HAT: "...x.....x..", KICK: "o.....o....."}),
    "reggae": (4, 4, (70, 90), {KICK: "........x.......", SIDE_STICK: "........x.......", HAT: "x.x.x.x.x.x.x.x."}),
    "electronic dance": (4, 4, (120, 135), {KICK: "x...x...x...x...", CLAP: "....x.......x...",
                                            OPEN_HAT: "..x...x...x...x."}),
    "shuffle": (3, 4, (80, 120), {KICK: "x.....x.....", SNARE: "...x.....x..", HAT: "x.xx.xx.xx.x"}),
}


# --------------------------------------------------------------------------------------------------- notes


def scale_pitches(key: int, mode: str, register: str) -> list[int]:
    """MIDI pitches of two octaves of the scale starting at the register's tonic."""
    steps = MAJOR if mode == "major" else MINOR
    root = REGISTER_ROOT[register] + key
    return [root + 12 * octave + s for octave in range(2) for s in steps] + [root + 24]


def melody_notes(rng, pitches: list[int], beats: float, tempo: int, velocity: int) -> list[tuple]:
    """A random walk on `pitches` filling `beats` beats: [(start_beat, length_beats, pitch, velocity)].
    Faster tempi favour longer notes (in beats) so the note rate stays singable."""
    lengths = (0.5, 1.0, 1.0, 2.0) if tempo < 110 else (1.0, 1.0, 2.0, 0.5)
    notes, t, degree = [], 0.0, int(rng.integers(0, 8))
    while t < beats:
        length = float(rng.choice(lengths))
        step = int(rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)))
        degree = int(np.clip(degree + step, 0, len(pitches) - 1))
        if rng.random() > 0.08:  # an occasional rest
            notes.append((t, length * 0.95, pitches[degree], int(np.clip(velocity + rng.integers(-12, 13), 1, 127))))
        t += length
    return notes


def chord_notes(rng, key: int, mode: str, register: str, beats: float, beats_per_bar: int, velocity: int) -> list:
    """Block triads, one a bar, on scale degrees I IV V vi (major) or i iv v VI (minor), an octave below the
    register's tonic."""
    steps = MAJOR if mode == "major" else MINOR
    root = REGISTER_ROOT[register] + key - 12
    notes, bar = [], 0
    while bar * beats_per_bar < beats:
        degree = int(rng.choice((0, 3, 4, 5)))
        for third in (0, 2, 4):
            d = degree + third
            notes.append((bar * beats_per_bar, beats_per_bar * 0.95, root + 12 * (d // 7) + steps[d % 7], velocity))
        bar += 1
    return notes


def drum_notes(style: str, beats: float, velocity: int, fill: bool, crash: bool) -> list[tuple]:
    """The style's one-bar pattern repeated over `beats` beats; `fill` puts a tom run in the last beat, `crash` a
    crash cymbal on the first."""
    per_beat, per_bar, _, pattern = DRUM_STYLES[style]
    notes, step_beats = [], 1.0 / per_beat
    bars = int(np.ceil(beats / per_bar))
    for bar in range(bars):
        for key, steps in pattern.items():
            for i, c in enumerate(steps):
                start = bar * per_bar + i * step_beats
                if c != "." and start < beats and not (fill and start >= beats - 1):
                    notes.append((start, step_beats, key, velocity if c == "x" else velocity * 2 // 3))
    if fill:
        for i in range(per_beat):
            notes.append((beats - 1 + i * step_beats, step_beats, TOMS[i % len(TOMS)], velocity))
    if crash:
        notes.append((0.0, 1.0, CRASH, velocity))
    return notes


def bass_notes(rng, key: int, mode: str, beats: float, beats_per_bar: int, velocity: int) -> list[tuple]:
    """A root-and-fifth bass line in the low octave, two notes a bar."""
    steps = MAJOR if mode == "major" else MINOR
    notes, t = [], 0.0
    while t < beats:
        degree = int(rng.choice((0, 3, 4, 5)))
        root = 36 + key + steps[degree]
        half = beats_per_bar / 2
        notes += [(t, half * 0.9, root, velocity), (t + half, half * 0.9, root + 7, velocity)]
        t += beats_per_bar
    return notes


# ---------------------------------------------------------------------------------------------------- MIDI


def midi_file(tracks: list[tuple[int, int, list[tuple]]], tempo: int) -> bytes:
    """A format-0 Standard MIDI File: tracks are (channel, program, notes) with notes as
    (start_beat, length_beats, pitch, velocity); tempo in beats per minute."""
    events = [(0, 0, b"\xff\x51\x03" + round(60_000_000 / tempo).to_bytes(3, "big"))]
    for channel, program, notes in tracks:
        events.append((0, 1, bytes([0xC0 | channel, program])))
        for start, length, pitch, velocity in notes:
            on = round(start * TICKS_PER_BEAT)
            off = max(on + 1, round((start + length) * TICKS_PER_BEAT))
            events.append((on, 3, bytes([0x90 | channel, pitch, max(1, min(127, velocity))])))
            events.append((off, 2, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same tick
    body, last = bytearray(), 0
    for tick, _, data in events:
        body += _vlq(tick - last) + data
        last = tick
    body += _vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT) + b"MTrk" + struct.pack(">I", len(body)) + body


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def find_soundfont() -> str | None:
    """The first installed SoundFont of SOUNDFONTS, or None."""
    return next((p for p in SOUNDFONTS if os.path.isfile(p)), None)


def render_midi(midi: bytes, soundfont: str, sample_rate: int, tmpdir: str, reverb: bool = True) -> np.ndarray:
    """fluidsynth renders `midi` offline → (samples,) float32 mono at sample_rate Hz (the stereo output averaged;
    fluidsynth adds a release tail of about two seconds past the last note)."""
    mid, wav = os.path.join(tmpdir, "clip.mid"), os.path.join(tmpdir, "clip.wav")
    with open(mid, "wb") as f:
        f.write(midi)
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "1" if reverb else "0", "-C", "0", "-g", "0.6",
                    "-r", str(sample_rate), "-F", wav, soundfont, mid],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data, _ = soundfile.read(wav, dtype="float32", always_2d=True)
    return data.mean(axis=1)
