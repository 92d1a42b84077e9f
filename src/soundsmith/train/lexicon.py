"""Paraphrases from a lexicon: captions reworded with WordNet's related words, and WordNet's own definitions and
usage examples, as extra sentences for distilling a text tower onto its teacher.

The text tower only sees the words of the training captions and whatever sentences it is distilled on; a prompt
worded otherwise ("a gentleman talking" for "a man speaking") lands where the tower guesses. Swapping a caption's
words for their synonyms, hypernyms, hyponyms and derived forms (`man` → `gentleman`, `male person`; `dog` →
`puppy`, `canine`; `rain` → `rainfall`) makes sentences that keep the caption's meaning in new words, and the
teacher says where each belongs. The lexicon is the Debian `wordnet-base` package (WordNet 3.0, Princeton licence);
scripts/install-data-deps installs it.
"""

import random
import re
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
RELATIONS = {"@", "~", "+", "&"}  # hypernym, hyponym, derivationally related, similar (adjectives)
SUFFIXES = {"n": (("ses", "s"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"), ("ies", "y"), ("s", "")),
            "v": (("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""), ("s", "")),
            "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e"))}


class Lexicon:
    """WordNet's synsets: `related(word)` is every lemma one relation away from the word's most common senses,
    `sentences(word)` its senses' definitions and usage examples."""

    def __init__(self, folder: Path = WORDNET, senses: int = 3):
        folder = Path(folder)
        if not (folder / "data.noun").is_file():
            raise FileNotFoundError(f"no WordNet database in {folder} (scripts/install-data-deps installs "
                                    "wordnet-base)")
        self.synsets: dict[tuple[str, int], tuple[list[str], list[tuple[str, int]], str]] = {}
        for file in sorted(set(FILES.values())):
            for line in (folder / f"data.{file}").read_text(encoding="latin-1").splitlines():
                if line and not line.startswith(" "):
                    self.synsets[(file, int(line[:8]))] = _synset(line)
        self.senses: dict[str, list[tuple[str, int]]] = {}  # lemma → its first `senses` synsets of every POS
        self.exceptions: dict[str, str] = {}
        for pos, file in (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv")):
            for line in (folder / f"index.{file}").read_text(encoding="latin-1").splitlines():
                if line and not line.startswith(" "):
                    fields = line.split()
                    count = int(fields[2])
                    self.senses.setdefault(fields[0], []).extend((file, int(o)) for o in fields[-count:][:senses])
            exc = folder / f"{file}.exc"
            if exc.is_file():
                for line in exc.read_text(encoding="latin-1").splitlines():
                    inflected, *bases = line.split()
                    self.exceptions.setdefault(inflected, bases[0])

    def lemma(self, word: str) -> str | None:
        """The base form of `word` that WordNet lists (dogs → dog, barking → bark), or None."""
        word = word.lower()
        if word in self.senses:
            return word
        if word in self.exceptions and self.exceptions[word] in self.senses:
            return self.exceptions[word]
        for rules in SUFFIXES.values():
            for suffix, ending in rules:
                if word.endswith(suffix) and (base := word[:-len(suffix)] + ending) in self.senses:
                    return base
        return None

    def related(self, word: str) -> list[str]:
        """Lemmas (spaces for WordNet's underscores) sharing a sense with `word` or one relation away from one."""
        base = self.lemma(word)
        if base is None:
            return []
        out = []
        for key in self.senses[base]:
            lemmas, pointers, _ = self.synsets[key]
            out += lemmas
            for target in pointers:
                out += self.synsets[target][0]
        seen = {base, word.lower()}
        return [w for w in (w.replace("_", " ") for w in out) if not (w in seen or seen.add(w))]

    def is_pos(self, word: str, file: str) -> bool:
        """Whether some sense of the (base form) `word` is a `file` ("noun", "verb", …)."""
        return any(f == file for f, _ in self.senses.get(word.replace(" ", "_"), ()))

    def sentences(self, word: str) -> list[str]:
        """Definitions and quoted usage examples of `word`'s senses."""
        base = self.lemma(word)
        out = []
        for key in self.senses.get(base, []) if base else []:
            gloss = self.synsets[key][2]
            parts = [p.strip() for p in gloss.split(";")]
            out += [p.strip('"') for p in parts if p]
        return out


def _synset(line: str) -> tuple[list[str], list[tuple[str, int]], str]:
    """(lemmas, related synsets, gloss) of one line of a WordNet data.* file."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", w) for w in fields[4:4 + 2 * count:2]]
    at = 4 + 2 * count
    pointers = []
    for i in range(int(fields[at])):
        symbol, offset, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
        if symbol in RELATIONS:
            pointers.append((FILES[pos], int(offset)))
    return lemmas, pointers, gloss.strip()


def inflect(replacement: str, original: str, lexicon: Lexicon) -> str:
    """`replacement` given the -ing or plural -s ending of the word it replaces (on its last word), where the
    replacement can be a verb (-ing) or a noun (-s)."""
    head, _, last = replacement.rpartition(" ")
    lowered = original.lower()
    if lowered.endswith("ing") and not last.endswith("ing") and lexicon.is_pos(replacement, "verb"):
        if last.endswith("e") and not last.endswith("ee"):
            last = last[:-1]
        elif len(re.findall(r"[aeiou]+", last)) == 1 and re.search(r"[^aeiou][aeiou][^aeiouwxy]$", last):
            last += last[-1]  # one syllable ending consonant-vowel-consonant: yap → yapping
        last += "ing"
    elif (lowered.endswith("s") and not lowered.endswith("ss") and not last.endswith("s")
          and lexicon.lemma(original) != lowered and lexicon.is_pos(replacement, "noun")):
        if re.search(r"[^aeiou]y$", last):
            last = last[:-1] + "ie"
        last += "es" if last.endswith(("s", "x", "ch", "sh")) else "s"
    return f"{head} {last}" if head else last


def paraphrases(captions: list[str], lexicon: Lexicon, n: int, seed: int = 0, swaps: int = 2) -> list[str]:
    """n captions with 1 … `swaps` of their words (≥ 3 letters, ones the lexicon knows) replaced by a related
    lemma, inflected like the word it replaces."""
    rng = random.Random(seed)
    cache: dict[str, list[str]] = {}
    out = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        tokens = rng.choice(captions).split()
        spots = [i for i, t in enumerate(tokens)
                 if t.isalpha() and len(t) >= 3 and cache.setdefault(t, lexicon.related(t))]
        if not spots:
            continue
        for i in rng.sample(spots, min(len(spots), rng.randint(1, swaps))):
            tokens[i] = inflect(rng.choice(cache[tokens[i]]), tokens[i], lexicon)
        out.append(" ".join(tokens))
    return out


def definitions(captions: list[str], lexicon: Lexicon, n: int, seed: int = 0) -> list[str]:
    """n of the definitions and usage examples (≥ 2 words) of the captions' words and of the words related to
    them, each once: the definitions of the caption words themselves first."""
    own = {t for c in captions for t in c.split() if t.isalpha() and len(t) >= 3}
    related = {r for w in own for r in lexicon.related(w) if " " not in r} - own
    out = sorted({s for w in own for s in lexicon.sentences(w) if len(s.split()) >= 2})
    more = sorted({s for w in related for s in lexicon.sentences(w) if len(s.split()) >= 2} - set(out))
    random.Random(seed).shuffle(more)
    return (out + more)[:n]
