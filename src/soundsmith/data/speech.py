"""Speech from the text-to-speech engines Debian ships: espeak-ng (formant, many accents), flite and festival.

Sentences come from a small grammar over a word list written here, so the caption can quote what is said.
Every voice has a known gender: the evaluation categories "male_speech" and "female_speech".
"""

import os
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile
import torch

from ..audio import resample


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "flite" or "festival"
    name: str  # engine's voice id
    gender: str  # "male" or "female"
    accent: str | None  # caption adjective ("Scottish") or None
    licence: str


ESPEAK_ACCENTS = {"en-us": "American", "en-gb": "British", "en-gb-scotland": "Scottish", "en-029": "Caribbean",
                  "en-gb-x-rp": "British", "en-gb-x-gbclan": "northern English", "en-us-nyc": "New York"}
FESTIVAL_VOICES = "/usr/share/festival/voices"
VOICES = (
    tuple(Voice("espeak-ng", f"{lang}+m{k}", "male", accent, "GPL-3+") for lang, accent in ESPEAK_ACCENTS.items()
          for k in range(1, 8))
    + tuple(Voice("espeak-ng", f"{lang}+f{k}", "female", accent, "GPL-3+") for lang, accent in ESPEAK_ACCENTS.items()
            for k in range(1, 6))
    + (Voice("flite", "kal", "male", "American", "BSD-like (CMU flite)"),
       Voice("flite", "kal16", "male", "American", "BSD-like (CMU flite)"),
       Voice("flite", "rms", "male", "American", "BSD-like (CMU flite)"),
       Voice("flite", "awb", "male", "Scottish", "BSD-like (CMU flite)"),
       Voice("flite", "slt", "female", "American", "BSD-like (CMU flite)"),
       Voice("festival", "kal_diphone", "male", "American", "festvox-kallpc16k (BSD-like, CSTR/OGI)"),
       Voice("festival", "cmu_us_slt_arctic_hts", "female", "American", "festvox-us-slt-hts (BSD-like, CMU)"))
)
# engine weights within a gender: espeak-ng is fast and varied, festival the most natural but slowest
ENGINE_WEIGHTS = {"espeak-ng": 0.45, "flite": 0.35, "festival": 0.2}

SUBJECTS = ("the old man", "my sister", "the little dog", "our teacher", "the farmer", "a young girl", "the children",
            "my friend", "the doctor", "the baker", "my brother", "the driver", "our neighbour", "the captain",
            "the student", "my mother", "my father", "the cat", "the pilot", "a tall woman")
PREDICATES = ("walks to the station", "reads a long book", "cooks dinner", "plays in the garden",
              "waits for the bus", "sings a song", "opens the window", "paints the fence", "drinks hot tea",
              "writes a letter", "feeds the birds", "cleans the kitchen", "buys fresh bread", "fixes the bicycle",
              "sleeps by the fire", "runs along the beach", "calls the office", "carries a heavy box",
              "plants yellow flowers", "counts the coins", "waters the plants", "climbs the hill",
              "sells apples at the market", "looks for the keys", "watches the boats")
TIMES = ("every morning", "on sunday", "after school", "in the evening", "before lunch", "at night", "today",
         "tomorrow", "on rainy days", "in the summer", "once a week", "at seven o'clock")
SAYINGS = ("the weather is nice today", "please close the door", "it is going to rain tonight",
           "can you help me with this", "the train leaves at seven", "thank you very much", "good morning everyone",
           "where is the nearest station", "i would like a cup of coffee", "see you next week",
           "the meeting starts at nine", "turn left at the next corner", "one two three four five",
           "welcome to the show", "this is a test of the system", "let us go home now", "what time is it",
           "the shop is closed on monday", "have a nice day", "the soup is too hot")


def sentence(rng) -> str:
    """A short sentence of 3–10 words: subject + predicate (+ time), or a common saying."""
    if rng.random() < 0.3:
        return str(rng.choice(SAYINGS))
    words = f"{rng.choice(SUBJECTS)} {rng.choice(PREDICATES)}"
    return f"{words} {rng.choice(TIMES)}" if rng.random() < 0.5 else words


def pick_voice(rng, gender: str) -> Voice:
    """A voice of that gender: engine by ENGINE_WEIGHTS, then uniformly among the engine's voices."""
    engines = sorted({v.engine for v in VOICES if v.gender == gender})
    weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
    engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    choices = [v for v in VOICES if v.gender == gender and v.engine == engine]
    return choices[int(rng.integers(len(choices)))]


def speak(voice: Voice, text: str, rate: float, sample_rate: int, tmpdir: str) -> np.ndarray:
    """`text` spoken by `voice` → (samples,) float32 at sample_rate Hz. rate scales the speed (1 = the engine's)."""
    wav = os.path.join(tmpdir, "speech.wav")
    if voice.engine == "espeak-ng":
        command = ["espeak-ng", "-v", voice.name, "-s", str(round(160 * rate)), "-w", wav, text]
    elif voice.engine == "flite":
        command = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}", "-t", text, "-o", wav]
    else:
        script = os.path.join(tmpdir, "speech.txt")
        with open(script, "w") as f:
            f.write(text + "\n")
        command = ["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                   f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})", "-o", wav, script]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data, rate_in = soundfile.read(wav, dtype="float32", always_2d=True)
    return resample(torch.from_numpy(data.mean(axis=1)), rate_in, sample_rate).numpy()


def missing_voices() -> list[str]:
    """Debian packages of festival voices in VOICES that are not installed."""
    needed = {"kal_diphone": "festvox-kallpc16k", "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
    found = set()
    for root, dirs, _ in os.walk(FESTIVAL_VOICES):
        found.update(dirs)
    return [package for name, package in needed.items() if name not in found]
