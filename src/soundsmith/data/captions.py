"""The wording of every training caption: templates per kind of clip, filled from what the clip really contains.

All caption text of `soundsmith data synth` comes from here (and from the label phrases in sources.py), so that
eval_prompts.py can be checked against it: its held-out prompts must use wording that never occurs here.
"""

MOODS = {"major": ("happy", "cheerful", "bright", "joyful", "uplifting"),
         "minor": ("sad", "melancholic", "dark", "gloomy", "mournful")}
TEMPO_WORDS = {"slow": ("slow", "relaxed", "unhurried"), "moderate": ("moderate", "steady", "mid-tempo"),
               "fast": ("fast", "lively", "quick")}
DYNAMICS = {"soft": ("softly", "gently", "quietly"), "medium": ("", "", ""), "loud": ("loudly", "forcefully", "boldly")}
PERSON = {"male": ("man", "male voice", "male speaker", "man's voice"),
          "female": ("woman", "female voice", "female speaker", "woman's voice")}
AMBIENCE = {"rain": ("rain", "falling rain", "steady rain"), "stream": ("a flowing stream", "a babbling brook",
                                                                        "running river water"),
            "wind": ("wind", "blowing wind", "a windy day")}
PLURALS = ("tubular bells", "small bells", "bagpipes", "bells")


def tempo_word(bpm: int) -> str:
    """'slow' below 90 bpm, 'fast' from 120, else 'moderate'."""
    return "slow" if bpm < 90 else "fast" if bpm >= 120 else "moderate"


def a(noun: str) -> str:
    """The noun with its indefinite article: 'a piano', 'an organ', 'tubular bells'."""
    if noun in PLURALS:
        return noun
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def melody(rng, noun: str, mode: str, key: str, bpm: int, register: str, dynamics: str, chords: str) -> str:
    """chords: 'none' (a melody alone), 'under' (a melody over block chords) or 'only' (block chords)."""
    mood, tempo = _pick(rng, MOODS[mode]), _pick(rng, TEMPO_WORDS[tempo_word(bpm)])
    dyn = _pick(rng, DYNAMICS[dynamics])
    played = f"played {dyn}" if dyn else "played"
    if chords == "only":
        options = (f"{a(noun)} playing {mood} chords",
                   f"{tempo} {mood} chords on {a(noun)} in {key} {mode}",
                   f"{a(noun)} playing {tempo} block chords at {bpm} beats per minute",
                   f"{mood} {noun} chords {played}, {mode} key")
    else:
        extra = " with chords" if chords == "under" else ""
        options = (f"{a(mood + ' ' + tempo + ' ' + noun)} melody in a {register} register{extra}",
                   f"{a(mood + ' ' + noun)} melody in {key} {mode}{extra}",
                   f"{a(noun)} playing {a(mood)} tune at {bpm} beats per minute{extra}",
                   f"{a(tempo + ' ' + noun)} solo in a {mode} key{extra}",
                   f"solo {noun}, {mood} and {tempo}{extra}",
                   f"{mood} music {played} on {a(noun)}{extra}",
                   f"{a(noun)} melody {played} in a {register} register, {bpm} bpm{extra}")
    return _pick(rng, options)


def bells(rng, noun: str, mode: str, bpm: int, peal: bool) -> str:
    """A melody or a peal (a descending scale rung over and over) on a bell-like instrument."""
    if peal:
        return _pick(rng, (f"{noun} ringing a peal", f"{a(noun)} peal, descending and repeating",
                           f"a peal of {noun.removeprefix('small ')}" if noun.endswith("bells") else f"{a(noun)} peal",
                           f"change ringing on {noun}"))
    mood, tempo = _pick(rng, MOODS[mode]), _pick(rng, TEMPO_WORDS[tempo_word(bpm)])
    return _pick(rng, (f"{noun} playing {a(mood)} melody", f"{a(tempo)} tune on {noun}",
                       f"{a(mood + ' ' + noun)} melody at {bpm} beats per minute", f"{noun} chiming a {mode} melody"))


def drums(rng, style: str, bpm: int, fill: bool, crash: bool, sampled: bool) -> str:
    tempo = _pick(rng, TEMPO_WORDS[tempo_word(bpm)])
    kit = "drum machine" if sampled else "drum kit"
    options = (f"{a(style)} drum beat at {bpm} beats per minute", f"{tempo} {style} drums",
               f"a drummer playing {a(style)} groove", f"{a(style)} rhythm on a {kit}, {bpm} bpm",
               f"drums playing {a(tempo + ' ' + style)} pattern", f"{a(tempo)} {style} beat on a {kit}")
    text = _pick(rng, options)
    if crash:
        text += _pick(rng, (", starting with a cymbal crash", " opening with a crash cymbal"))
    if fill:
        text += _pick(rng, (", ending with a drum fill", " with a tom fill at the end"))
    return text


def band(rng, noun: str, style: str, mode: str, bpm: int) -> str:
    mood, tempo = _pick(rng, MOODS[mode]), _pick(rng, TEMPO_WORDS[tempo_word(bpm)])
    return _pick(rng, (f"{a(style)} band with {noun}, bass and drums", f"{a(mood)} song with {noun} and drums at "
                       f"{bpm} bpm", f"{noun}, bass guitar and drums playing {a(tempo + ' ' + style)} groove",
                       f"an instrumental {style} track featuring {noun}", f"{a(mood + ' ' + tempo)} {style} tune "
                       f"with {noun} over drums"))


def speech(rng, gender: str, accent: str | None, engine: str, text: str, quote: bool) -> str:
    """quote=True puts the words in the caption ("a man saying: ...")."""
    person = _pick(rng, PERSON[gender])
    kind = _pick(rng, ("robotic ", "synthetic ", "computer ")) if engine == "espeak-ng" and rng.random() < 0.4 else ""
    who = a(f"{kind}{person}")
    if accent and rng.random() < 0.4:
        who = _pick(rng, (f"{who} with {a(accent)} accent", a(f"{accent} {kind}{person}")))
    if quote:
        return _pick(rng, (f"{who} saying: {text}", f"{who} says: {text}", f"{who} speaks: {text}",
                           f"{who} reading the sentence: {text}"))
    return _pick(rng, (f"{who} speaking", f"{who} talking", f"speech from {who}", f"{who} reading a sentence aloud"))


def effect(rng, phrase: str, arrangement: str, count: int = 1, other: str | None = None,
           ambience: str | None = None) -> str:
    """arrangement: 'single', 'repeated' (count times), 'distant', 'ambience' (over ambience), 'pair' (with the
    phrase `other`), 'sequence' (followed by `other`)."""
    if arrangement == "single":
        return _pick(rng, (phrase, f"the sound of {phrase}", f"{phrase}, once", f"a recording of {phrase}"))
    if arrangement == "repeated":
        times = {2: "twice", 3: "three times", 4: "four times"}.get(count, "several times")
        return _pick(rng, (f"{phrase} {times}", f"{phrase}, repeated {times}", f"{phrase} repeatedly",
                           f"{phrase} over and over"))
    if arrangement == "distant":
        return _pick(rng, (f"{phrase} in the distance", f"{phrase} far away", f"a faraway sound of {phrase}"))
    if arrangement == "ambience":
        amb = _pick(rng, AMBIENCE[ambience])
        return _pick(rng, (f"{phrase} with {amb} in the background", f"{phrase} over the sound of {amb}",
                           f"{amb} and {phrase}", f"{phrase} while {amb} can be heard"))
    if arrangement == "pair":
        return _pick(rng, (f"{phrase} and {other}", f"{phrase} together with {other}", f"{phrase} mixed with {other}"))
    if arrangement == "sequence":
        return _pick(rng, (f"{phrase} followed by {other}", f"{phrase}, then {other}", f"first {phrase}, then {other}"))
    raise ValueError(arrangement)


# procedural sounds: kind → phrases (the generator's parameters pick among them in effects.py)
PROCEDURAL = {
    "light rain": ("light rain falling", "a gentle drizzle", "soft rain"),
    "heavy rain": ("heavy rain pouring down", "a downpour", "torrential rain"),
    "thunderstorm": ("a thunderstorm with heavy rain", "rain and rolling thunder", "thunder during a rainstorm"),
    "stream": ("a babbling brook", "a flowing stream", "a river flowing over stones"),
    "waves": ("ocean waves crashing", "waves rolling onto a beach", "surf on the shore"),
    "drips": ("water dripping slowly", "slow drips of water", "a leaking tap dripping"),
    "idle engine": ("a car engine idling", "an idling motor", "a truck engine rumbling at idle"),
    "revving engine": ("an engine revving", "a car engine accelerating", "a motor revving up and down"),
    "church bell": ("a church bell ringing {count} times", "a deep bell tolling {count} times",
                    "a bell striking {count} times"),
    "wind": ("wind blowing", "strong gusts of wind", "a howling wind"),
    "thunder": ("thunder rumbling", "a clap of thunder", "distant thunder"),
    "siren": ("a police siren wailing", "an emergency siren", "a rising and falling siren"),
    "tone": ("a sine tone at {hz} hertz", "a pure tone of {hz} Hz", "a steady {pitch} pitched tone"),
    "beeps": ("{pitch} pitched beeping", "a series of electronic beeps", "beep beep beep"),
    "sweep": ("a {direction} sine sweep", "a tone sweeping {direction}", "a {direction} frequency sweep"),
    "white noise": ("white noise", "loud static hiss", "a burst of white noise"),
    "pink noise": ("pink noise", "a soft rushing noise", "pink noise hiss"),
    "hum": ("a low electrical hum", "mains hum", "a buzzing hum at {hz} hertz"),
}


def procedural(rng, kind: str, **values) -> str:
    return _pick(rng, PROCEDURAL[kind]).format(**values)
