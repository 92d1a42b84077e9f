"""The evaluation categories and held-out prompts that measure a model's prompt adherence.

Every synthesized clip carries one of CATEGORIES. EVAL_PROMPTS are written in wording that no training caption uses
(tests/test_data.py checks them against a large sample of captions.py's output: no prompt is part of a caption and
no four consecutive words of a prompt occur in one), so a model that follows them has learned the sound, not the
sentence. Adherence = the share of clips generated from a category's prompts that the classifier trained on real
clips (soundsmith.eval.classify) puts in that category.
"""

CATEGORIES = ("piano", "drums", "male_speech", "female_speech", "animal", "water", "vehicle", "bell")
OTHER = "other"  # every clip outside CATEGORIES (other instruments, bands, other effects, tones, noise)
ALL_CATEGORIES = CATEGORIES + (OTHER,)

EVAL_PROMPTS = {
    "piano": (
        "someone practising scales on the piano",
        "a lonely piano tune",
        "piano music, nothing else",
        "a pianist improvising",
        "piano keys pressed one after another",
        "a short piece for piano",
    ),
    "drums": (
        "a groove played on drums",
        "percussion: kick, snare and hi-hat",
        "a drum loop for a pop song",
        "somebody drumming a steady rhythm",
        "snare and bass drum keeping time",
        "drum practice",
    ),
    "male_speech": (
        "a gentleman talking",
        "a deep voice reading out words",
        "a guy telling a short story",
        "a man giving an announcement",
        "a narrator with a low voice",
        "a boy's father talking slowly",
    ),
    "female_speech": (
        "a lady talking",
        "a girl's mother reading out words",
        "a woman giving an announcement",
        "a narrator with a high voice",
        "a lady telling a short story",
        "a woman chatting",
    ),
    "animal": (
        "a puppy yapping",
        "animals making noise on a farm",
        "a dog growls and yelps",
        "the call of a wild animal",
        "noises from the zoo",
        "a pet making sounds",
    ),
    "water": (
        "rainfall",
        "it is raining outside",
        "a river rushing",
        "water trickling",
        "a shower of rain on the ground",
        "sounds of a creek",
    ),
    "vehicle": (
        "traffic noise from an engine",
        "a vehicle driving by",
        "a motor running",
        "a truck roaring past",
        "a machine engine at work",
        "an aeroplane taking off",
    ),
    "bell": (
        "ding dong of bells",
        "a bell rings out",
        "a doorbell-like chime",
        "bells pealing from a tower",
        "a handbell",
        "a clear metallic ringing",
    ),
}

VALIDATION_PROMPTS = {  # 8 per category: 12 clips a category at 3 seeds was ±14 points, too coarse to choose by
    "piano": ("a few bars on the piano", "a piano ballad", "an upright piano in a quiet room", "someone playing piano",
              "gentle chords from a piano", "a child playing the piano", "a jazzy piano riff",
              "grand piano, a solo recital"),
    "drums": ("a drummer warming up", "rock drumming with cymbals", "tom-toms and cymbals", "drumming",
              "a drummer's fast fill", "a drummer playing fast", "drums and cymbals in a studio",
              "kit drums keeping a basic beat"),
    "male_speech": ("an old man talking", "a male newsreader", "an elderly man speaking clearly",
                    "a father explaining something", "a man on the telephone", "a man giving a speech",
                    "a young man reading aloud", "a grandfather telling a story"),
    "female_speech": ("a young woman talking", "a woman listing items aloud", "a female newsreader",
                      "a mother explaining something", "a woman on the telephone", "a woman giving a speech",
                      "a young woman reading aloud", "a grandmother telling a story"),
    "animal": ("a dog woofing", "a kitten crying for its mother", "birds and farm animals", "an animal cry",
               "a hound howling", "a kitty mewing", "cattle lowing in a field", "birds chirping"),
    "water": ("a rainy night outdoors", "a waterfall", "a stream of running water", "rain pattering",
              "rain coming down hard", "a downpour on the street", "splashes in a pool", "a brook flowing over stones"),
    "vehicle": ("an idling automobile", "a motorbike passing", "a sports car accelerating hard",
                "a bus driving along a road", "a car engine starting", "a truck idling", "a car passing on a highway",
                "revving a motor loudly"),
    "bell": ("church bells", "a chiming clock", "a small bell jingling", "a gong-like bell tone",
             "a bicycle bell", "far-off ringing of a bell", "temple bells", "a slow toll of one bell"),
}
