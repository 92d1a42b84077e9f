"""Where real audio comes from: the Debian packages we read, and the label table that names their files.

The table is written by hand from the file names (docs/data-sources.md credits every package). A label has an
evaluation category, a few caption phrases (noun phrases that fit every template in captions.py: "a dog
barking") and its files as "package:path" relative to the package's sound folder. Files of packages that are not
installed are left out by scan(); `soundsmith data synth` refuses to run until scripts/install-data-deps has
installed them all, so a seed means the same dataset on every machine.
"""

import os
import shutil
from dataclasses import dataclass
from functools import lru_cache

# package → (Debian package, folder, licence of the files we use, attribution)
PACKAGES = {
    "qabcs": ("qabcs-data", "/usr/share/qabcs/abcs/all/noises", "GPL-3+", "qabcs, 2019-2020 DanSoft"),
    "scratch": ("scratch", "/usr/share/scratch/Media/Sounds", "CC-BY-SA-3.0",
                "Scratch 1.4 media library, 2011 Massachusetts Institute of Technology (Lifelong Kindergarten Group)"),
    "sonicpi": ("sonic-pi-samples", "/usr/share/sonic-pi/samples", "CC0-1.0",
                "Sonic Pi samples (freesound.org contributors, CC0)"),
    "freedesktop": ("sound-theme-freedesktop", "/usr/share/sounds/freedesktop/stereo", None,
                    "freedesktop.org sound theme"),
}
FREEDESKTOP_LICENCES = {  # per file (/usr/share/doc/sound-theme-freedesktop/copyright)
    "bell.oga": "CC-BY-3.0 (Dr. Richard Boulanger et al.)",
    "complete.oga": "CC-BY-3.0 (Dr. Richard Boulanger et al.)",
    "alarm-clock-elapsed.oga": "CC-BY-SA-3.0 (Tim/corsica_s)",
    "phone-incoming-call.oga": "GPL-2+ (Damien Sandras)",
    "camera-shutter.oga": "CC-BY-SA-3.0 (freesound user horsthorstensen)",
}
TOOLS = {  # executable → Debian package
    "fluidsynth": "fluidsynth",
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "text2wave": "festival",
}


@dataclass(frozen=True)
class Label:
    """A kind of real sound: its evaluation category, caption phrases and files ("package:path")."""

    category: str
    phrases: tuple
    files: tuple


def _q(*names):
    return tuple(f"qabcs:{n}.ogg" for n in names)


LABELS = {
    # animals
    "dog": Label("animal", ("a dog barking", "a barking dog", "dogs barking"),
                 _q("dog") + ("scratch:Animal/Dog1.wav", "scratch:Animal/Dog2.wav")),
    "cat": Label("animal", ("a cat meowing", "a meowing cat", "a kitten mewing"),
                 _q("cat") + ("scratch:Animal/Cat.mp3", "scratch:Animal/Meow.wav", "scratch:Animal/Kitten.wav")),
    "bird": Label("animal", ("a bird chirping", "birdsong", "a small bird singing"),
                  _q("bird", "sparrow") + ("scratch:Animal/Bird.wav",)),
    "owl": Label("animal", ("an owl hooting", "a hooting owl", "an owl calling at night"),
                 _q("owl", "eagle-owl") + ("scratch:Animal/Owl.wav",)),
    "crow": Label("animal", ("a crow cawing", "a cawing crow", "crows cawing"),
                  _q("crow") + ("sonicpi:misc_crow.flac",)),
    "rooster": Label("animal", ("a rooster crowing", "a crowing rooster", "a cockerel crowing"),
                     _q("rooster") + ("scratch:Animal/Rooster.wav",)),
    "duck": Label("animal", ("a duck quacking", "a quacking duck", "ducks quacking"),
                  _q("duck") + ("scratch:Animal/Duck.wav",)),
    "goose": Label("animal", ("a goose honking", "a honking goose", "geese honking"),
                   _q("goose") + ("scratch:Animal/Goose.wav",)),
    "cow": Label("animal", ("a cow mooing", "a mooing cow", "cattle lowing"), _q("cow", "calf")),
    "horse": Label("animal", ("a horse neighing", "a neighing horse", "a horse whinnying"),
                   _q("horse", "foal") + ("scratch:Animal/Horse.wav",)),
    "sheep": Label("animal", ("a sheep bleating", "a bleating sheep", "sheep baaing"), _q("sheep")),
    "pig": Label("animal", ("a pig oinking", "a grunting pig", "pigs grunting"), _q("pig")),
    "wolf": Label("animal", ("a wolf howling", "a howling wolf", "wolves howling"),
                  _q("wolf") + ("scratch:Animal/WolfHowl.wav",)),
    "big cat": Label("animal", ("a lion roaring", "a roaring big cat", "a tiger roaring"), _q("lion", "tiger")),
    "frog": Label("animal", ("a frog croaking", "a croaking frog", "frogs croaking"), _q("frog")),
    "cricket": Label("animal", ("crickets chirping", "chirping insects", "a cricket chirping"),
                     _q("grasshopper") + ("scratch:Animal/Cricket.wav", "scratch:Animal/Crickets.wav")),
    "elephant": Label("animal", ("an elephant trumpeting", "a trumpeting elephant", "an elephant calling"),
                      _q("elephant")),
    "monkey": Label("animal", ("a monkey screeching", "a chattering monkey", "an ape calling"),
                    _q("chimpanzee", "little_monkey")),
    "bear": Label("animal", ("a bear growling", "a growling bear", "a bear grunting"), _q("bear")),
    "sea lion": Label("animal", ("a sea lion barking", "a barking sea lion", "a seal calling"),
                      ("scratch:Animal/SeaLion.mp3",)),
    # water
    "running water": Label("water", ("water running", "running water", "water pouring from a tap"),
                           ("scratch:Effects/WaterRunning.mp3",)),
    "drops": Label("water", ("water dripping", "drops of water falling", "water drops"),
                   ("scratch:Effects/WaterDrop.mp3",)),
    "bubbles": Label("water", ("water bubbling", "bubbles in water", "bubbling water"),
                     ("scratch:Effects/Bubbles.wav",)),
    "splash": Label("water", ("a splash of water", "something splashing into water", "water splashing"),
                    ("scratch:Effects/Plunge.wav", "scratch:Effects/Ripples.wav")),
    # vehicles
    "car": Label("vehicle", ("a car passing by", "a car driving past", "a passing car"),
                 ("scratch:Effects/CarPassing.wav",)),
    "motorcycle": Label("vehicle", ("a motorcycle passing by", "a motorbike driving past", "a passing motorcycle"),
                        ("scratch:Effects/MotorcyclePassing.wav",)),
    "airplane": Label("vehicle", ("an airplane flying overhead", "a propeller plane", "an aircraft engine"),
                      _q("airplane")),
    "helicopter": Label("vehicle", ("a helicopter flying", "helicopter rotor blades", "a helicopter hovering"),
                        _q("helicopter")),
    "tractor": Label("vehicle", ("a tractor engine running", "a diesel tractor", "a tractor driving"),
                     _q("tractor")),
    "train": Label("vehicle", ("a train passing", "a steam train", "a locomotive"), _q("train")),
    "excavator": Label("vehicle", ("an excavator working", "heavy machinery engine", "a digger engine"),
                       _q("excavator")),
    "drone": Label("vehicle", ("a drone buzzing", "a quadcopter flying", "a toy drone whirring"),
                   _q("quadrocopter")),
    # bells and chimes
    "church bell": Label("bell", ("a church bell tolling", "a large bell ringing", "a bell tolling slowly"),
                         ("scratch:Effects/BellToll.wav",)),
    "gong": Label("bell", ("a gong being struck", "a ringing gong", "a gong resonating"),
                  ("scratch:Percussion/Gong.wav",)),
    "small bell": Label("bell", ("a small bell ringing", "a bell chiming", "a ringing bell"),
                        ("freedesktop:bell.oga", "sonicpi:perc_bell.flac", "sonicpi:perc_bell2.flac")),
    "chime": Label("bell", ("a chime", "a bright chime ringing", "chimes ringing"),
                   ("freedesktop:complete.oga", "sonicpi:elec_chime.flac", "sonicpi:elec_bell.flac")),
    "triangle": Label("bell", ("a triangle being struck", "a ringing triangle", "the ting of a triangle"),
                      ("sonicpi:elec_triangle.flac",)),
    "alarm bell": Label("bell", ("an alarm clock bell ringing", "an alarm bell", "an alarm clock ringing"),
                        ("freedesktop:alarm-clock-elapsed.oga",)),
    # other sounds
    "door": Label("other", ("a door creaking", "a door closing", "a creaky door"),
                  ("scratch:Effects/DoorCreak.wav", "scratch:Effects/DoorClose.mp3", "sonicpi:perc_door.flac")),
    "footsteps": Label("other", ("footsteps", "someone walking", "footsteps on a hard floor"),
                       ("scratch:Human/Footsteps-1.wav", "scratch:Human/Footsteps-2.mp3")),
    "laughter": Label("other", ("people laughing", "laughter", "someone laughing"),
                      ("scratch:Human/Laugh-female.wav", "scratch:Human/Laugh-male1.wav",
                       "scratch:Human/Laugh-male2.wav", "scratch:Human/Laugh-male3.mp3")),
    "cough": Label("other", ("someone coughing", "a cough", "a person coughing"),
                   ("scratch:Human/Cough-female.wav", "scratch:Human/Cough-male.wav")),
    "sneeze": Label("other", ("someone sneezing", "a sneeze", "a person sneezing"),
                    ("scratch:Human/Sneeze-female.wav", "scratch:Human/Sneeze-male.wav")),
    "baby": Label("other", ("a baby crying", "a crying baby", "an infant crying"), ("scratch:Human/BabyCry.mp3",)),
    "clapping": Label("other", ("hands clapping", "a hand clap", "clapping"), ("scratch:Percussion/HandClap.wav",)),
    "snap": Label("other", ("fingers snapping", "a finger snap", "snapping fingers"),
                  ("scratch:Human/FingerSnap.wav", "sonicpi:perc_snap.flac")),
    "crowd": Label("other", ("a crowd at a party", "people chatting at a party", "a noisy crowd"),
                   ("scratch:Human/PartyNoise.wav",)),
    "typing": Label("other", ("typing on a keyboard", "keyboard typing", "someone typing"),
                    ("scratch:Effects/Typing.mp3",) + _q("keyboard")),
    "sewing machine": Label("other", ("a sewing machine running", "a sewing machine", "a sewing machine whirring"),
                            ("scratch:Effects/SewingMachine.mp3",)),
    "clock": Label("other", ("a clock ticking", "a ticking clock", "a watch ticking"), _q("clock", "watch")),
    "zipper": Label("other", ("a zipper being pulled", "a zip", "someone zipping a bag"), _q("zipper")),
    "whistle": Label("other", ("a whistle blowing", "a sports whistle", "someone blowing a whistle"), _q("whistle")),
    "fire": Label("other", ("a fire crackling", "crackling flames", "a campfire burning"), _q("fire")),
    "camera": Label("other", ("a camera shutter", "a camera clicking", "a photo being taken"),
                    ("freedesktop:camera-shutter.oga",)),
    "phone": Label("other", ("a phone ringing", "a ringing telephone", "an incoming phone call"),
                   ("freedesktop:phone-incoming-call.oga",)),
    "pop": Label("other", ("a pop", "a balloon popping", "a cork popping"), ("scratch:Effects/Pop.wav",)),
    "laser": Label("other", ("a laser sound effect", "a sci-fi laser", "laser zaps"),
                   ("scratch:Electronic/Laser1.wav", "scratch:Electronic/Laser2.wav")),
    "beeps": Label("other", ("computer beeps", "electronic beeping", "a computer beeping"),
                   ("scratch:Electronic/ComputerBeeps1.wav", "scratch:Electronic/ComputerBeeps2.wav")),
}
# recorded instruments (qabcs): label → phrases; category "piano" for the pianos, else "other"
INSTRUMENT_FILES = {
    "piano": ("piano", ("a piano being played", "piano notes", "a grand piano"), _q("piano", "grand_piano")),
    "violin": ("other", ("a violin being played", "violin notes", "a fiddle"), _q("violin")),
    "cello": ("other", ("a cello being played", "cello notes", "a bowed cello"), _q("cello")),
    "saxophone": ("other", ("a saxophone being played", "saxophone notes", "a sax"), _q("saxophone")),
    "trumpet": ("other", ("a trumpet being played", "trumpet notes", "a brass trumpet"),
                _q("trumpet") + ("scratch:Instruments/Trumpet1.wav", "scratch:Instruments/Trumpet2.wav")),
    "flute": ("other", ("a flute being played", "flute notes", "a wooden flute"), _q("flute", "recorder")),
    "guitar": ("other", ("a guitar being played", "guitar strumming", "an acoustic guitar"),
               _q("guitar") + ("scratch:Instruments/GuitarStrum.wav",)),
    "electric guitar": ("other", ("an electric guitar", "electric guitar notes", "an electric guitar riff"),
                        _q("electric_guitar")),
    "harmonica": ("other", ("a harmonica being played", "harmonica notes", "a mouth organ"), _q("harmonica")),
    "accordion": ("other", ("an accordion being played", "accordion notes", "a squeezebox"),
                  _q("accordion", "squeezebox")),
    "bagpipes": ("other", ("bagpipes playing", "the drone of bagpipes", "a bagpiper"), _q("bagpipes")),
    "harp": ("other", ("a harp being played", "harp strings", "a plucked harp"), _q("harp")),
    "xylophone": ("other", ("a xylophone being played", "xylophone notes", "a wooden xylophone"), _q("xylophone")),
    "organ": ("other", ("an organ being played", "organ notes", "a pipe organ"), _q("organ")),
    "didgeridoo": ("other", ("a didgeridoo drone", "a didgeridoo", "a droning didgeridoo"),
                   ("scratch:Instruments/Dijjeridoo.mp3",)),
}
LABELS.update({name: Label(cat, phrases, files) for name, (cat, phrases, files) in INSTRUMENT_FILES.items()})
# real drum hits (sonic-pi, CC0) sequenced into beats by music.DRUM_STYLES patterns
DRUM_HITS = {
    "kick": ("bd_808", "bd_boom", "bd_fat", "bd_haus", "bd_klub", "bd_pure", "bd_tek", "drum_heavy_kick",
             "drum_bass_hard"),
    "snare": ("sn_dolf", "sn_dub", "sn_generic", "sn_zome", "drum_snare_hard", "drum_snare_soft", "elec_snare"),
    "hat": ("drum_cymbal_closed", "drum_cymbal_pedal", "elec_tick"),
    "open hat": ("drum_cymbal_open", "drum_cymbal_soft"),
    "ride": ("drum_cymbal_soft", "drum_cymbal_closed"),
    "clap": ("perc_snap", "elec_snare"),
    "tom": ("drum_tom_lo_hard", "drum_tom_mid_hard", "drum_tom_hi_hard"),
    "crash": ("drum_splash_hard", "drum_cymbal_hard"),
}


def resolve(ref: str) -> str:
    """'scratch:Animal/Dog1.wav' → its absolute path."""
    package, rel = ref.split(":", 1)
    return os.path.join(PACKAGES[package][1], rel)


def licence(ref: str) -> str:
    """The licence of one file reference."""
    package, rel = ref.split(":", 1)
    if package == "freedesktop":
        return FREEDESKTOP_LICENCES[rel]
    return PACKAGES[package][2]


@lru_cache(maxsize=1)
def scan() -> dict[str, tuple]:
    """label → its installed file references (labels without any are left out), in table order."""
    found = {}
    for name, label in LABELS.items():
        files = tuple(ref for ref in label.files if os.path.isfile(resolve(ref)))
        if files:
            found[name] = files
    return found


def missing() -> list[str]:
    """Debian packages that synthesis needs and that are not installed (tools, the SoundFont, sound packages)."""
    from .music import find_soundfont

    absent = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if find_soundfont() is None:
        absent.append("timgm6mb-soundfont")
    absent += [package for package, folder, _, _ in PACKAGES.values() if not os.path.isdir(folder)]
    from .speech import missing_voices

    return absent + missing_voices()
