"""WordNet paraphrases for text-tower distillation (soundsmith.train.lexicon), on a hand-written WordNet folder in
the database's own format, and on Debian's where it is installed."""

from pathlib import Path

import pytest

from soundsmith.train import lexicon

# offset lex_filenum ss_type w_cnt(hex) [word lex_id]… p_cnt [symbol offset pos source/target]… | gloss
NOUNS = [
    "  1 This software and database is being provided to you, the LICENSEE, by Princeton University",
    '00000100 05 n 02 dog 0 domestic_dog 0 002 @ 00000200 n 0000 ~ 00000300 n 0000 | a domesticated canid; '
    '"the dog barked all night"',
    "00000200 05 n 01 canine 0 000 | any of various fissiped mammals",
    "00000300 05 n 01 puppy 0 001 @ 00000100 n 0000 | a young dog",
    "00000400 04 n 01 bark 0 001 + 00000100 v 0101 | the sound made by a dog",
    "00000500 07 n 01 frump 0 000 | a dull unattractive woman",
]
VERBS = ["00000100 32 v 02 bark 0 yap 0 001 + 00000400 n 0101 01 + 02 00 | make barking sounds"]
INDEX = {
    "noun": ["dog n 2 2 @ ~ 2 0 00000100 00000500", "canine n 1 0 1 0 00000200", "puppy n 1 1 @ 1 0 00000300",
             "domestic_dog n 1 0 1 0 00000100", "bark n 1 1 + 1 0 00000400", "frump n 1 0 1 0 00000500"],
    "verb": ["bark v 1 1 + 1 0 00000100", "yap v 1 1 + 1 0 00000100"],
}


@pytest.fixture
def wordnet(tmp_path) -> Path:
    (tmp_path / "data.noun").write_text("\n".join(NOUNS) + "\n")
    (tmp_path / "data.verb").write_text("\n".join(VERBS) + "\n")
    for name in ("data.adj", "data.adv", "index.adj", "index.adv"):
        (tmp_path / name).write_text("")
    for file, lines in INDEX.items():
        (tmp_path / f"index.{file}").write_text("\n".join(lines) + "\n")
    (tmp_path / "verb.exc").write_text("barked bark\n")
    return tmp_path


def test_related_words_follow_the_first_senses_and_their_relations(wordnet):
    words = lexicon.Lexicon(wordnet, senses=1)
    assert words.related("dog") == ["domestic dog", "canine", "puppy"]  # synonym, hypernym, hyponym; not frump
    assert "frump" in lexicon.Lexicon(wordnet, senses=2).related("dog")
    assert words.lemma("dogs") == "dog" and words.lemma("barking") == "bark" and words.lemma("barked") == "bark"
    assert words.lemma("zebra") is None and words.related("zebra") == []
    assert words.related("barking") == ["yap"]  # the noun's derived verb, the verb's synonym: bark itself is not new


def test_paraphrases_reword_captions_and_inflect_like_the_original(wordnet):
    words = lexicon.Lexicon(wordnet, senses=1)
    assert lexicon.inflect("yap", "barking", words) == "yapping"
    assert lexicon.inflect("puppy", "dogs", words) == "puppies"
    assert lexicon.inflect("domestic dog", "dogs", words) == "domestic dogs"
    assert lexicon.inflect("canine", "dog", words) == "canine"
    out = lexicon.paraphrases(["a dog barking", "a loud dog"], words, 40, seed=0)
    assert len(out) == 40 and all(p not in ("a dog barking", "a loud dog") for p in out)
    assert any("puppy" in p for p in out) and any("yapping" in p for p in out)
    assert out == lexicon.paraphrases(["a dog barking", "a loud dog"], words, 40, seed=0)  # seeded
    assert lexicon.paraphrases(["the 42"], words, 3) == []  # nothing the lexicon knows: no paraphrase


def test_definitions_put_the_caption_words_own_first(wordnet):
    words = lexicon.Lexicon(wordnet, senses=1)
    out = lexicon.definitions(["a dog barking"], words, 100)
    assert out[:4] == sorted(out[:4]) and "a domesticated canid" in out[:4] and "the dog barked all night" in out
    assert "a young dog" in out and len(out) == len(set(out))
    assert len(lexicon.definitions(["a dog barking"], words, 2)) == 2


def test_a_missing_database_says_what_installs_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        lexicon.Lexicon(tmp_path)


@pytest.mark.skipif(not (lexicon.WORDNET / "data.noun").is_file(), reason="wordnet-base not installed")
def test_debians_wordnet_reaches_everyday_sound_words():
    words = lexicon.Lexicon()
    assert "puppy" in words.related("dog") and "rainfall" in words.related("rain")
