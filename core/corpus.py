"""A seeded generator of short, simple-English stories: the course model's whole world.

Each story has one named character, a gender (so "he"/"she", "his"/"her" must agree),
a coloured object and a place. The text is built so that dependencies a small model can
learn are visible: the name is introduced once and repeated later in places where only a
name can stand; pronouns agree with the character; the object's colour and noun recur;
and "The cat sat on the" is always followed by " mat".

Every story also returns its *probes*: character spans where the right continuation is
known for certain from earlier in the story. The evaluation reads them; nothing is guessed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

END_OF_TEXT = "<|endoftext|>"

GIRL_NAMES = """Mia Lily Emma Ava Zoe Ella Lucy Anna Rosa Nora Ruby Ivy Maya Luna Clara Alice
Hannah Sara Julia Nina Olive Daisy Grace Chloe Amy Kate Lena Tina Wendy Holly Molly Jenny
Sophie Leah Fiona Greta Hazel Iris Jane Kim Laura Mabel Nell Penny Rita Sally Tess Vera""".split()
BOY_NAMES = """Tom Ben Sam Max Leo Jack Finn Noah Liam Owen Jake Luke Adam Eli Hugo Oscar Theo
Ryan Carl Dan Eric Fred Gus Hank Ian Joe Kevin Mark Ned Pete Rob Seth Tim Victor Will Zack
Alex Bob Colin Dev Evan Felix Glen Harry Ivan Jim Kurt Milo""".split()
OBJECTS = "ball kite hat book cup box drum doll car boat bike bag shoe coat sock spoon cake ring".split()
COLOURS = "red blue green yellow pink brown orange purple white black".split()
PLACES = "park garden beach forest school market farm river hill shop zoo lake".split()
ANIMALS = "dog bird frog duck fox rabbit cow goat mouse pig".split()
FEELINGS = "happy sad tired glad hungry sleepy proud".split()
# Some stories open with "The cat sat on the mat.", so that the text's very first token can be "The"
# (no space before it), as in a prompt a student types; without them that token is almost never seen.
OPEN_WITH_THE_CAT = 0.1


@dataclass
class Probe:
    """A span of a story whose text is fixed by what came before it."""

    kind: str  # "name" | "pronoun" | "object" | "mat"
    start: int  # character offset of the span's first character (its leading space included)
    answer: str  # the span's text, e.g. " Mia"
    wrong: str = ""  # for pronouns: the other gender's form, e.g. " he"


@dataclass
class Story:
    text: str
    probes: list[Probe] = field(default_factory=list)


class _StoryWriter:
    """Appends text and records probes at the right character offsets."""

    def __init__(self) -> None:
        self.text = ""
        self.probes: list[Probe] = []

    def add(self, text: str) -> None:
        self.text += text

    def probe(self, kind: str, answer: str, wrong: str = "") -> None:
        self.probes.append(Probe(kind, len(self.text), answer, wrong))
        self.text += answer


def write_story(rng: random.Random) -> Story:
    """One story; `rng` fixes every choice, so the same seed gives the same text."""
    is_girl = rng.random() < 0.5
    name = rng.choice(GIRL_NAMES if is_girl else BOY_NAMES)
    kind = rng.choice(["girl", "kid"] if is_girl else ["boy", "kid"])
    subject, possessive = ("She", "her") if is_girl else ("He", "his")
    wrong_subject, wrong_possessive = ("He", "his") if is_girl else ("She", "her")
    colour, thing = rng.choice(COLOURS), rng.choice(OBJECTS)
    place, animal = rng.choice(PLACES), rng.choice(ANIMALS)
    feeling = rng.choice(FEELINGS)
    w = _StoryWriter()

    size = rng.choice(["little ", "small ", "young ", ""])
    if rng.random() < OPEN_WITH_THE_CAT:
        w.add("The cat sat on the")
        w.probe("mat", " mat")
        w.add(f". Next to the cat sat a {size}{kind} named {name}.")
    else:
        w.add(f"Once upon a time, there was a {size}{kind} named {name}.")
    w.probe("name", f" {name}")
    w.add(f" had a {colour} {thing}.")
    w.add(f" {subject}")  # sentence starts with a pronoun: the probe is on the next possessive
    w.add(" loved")
    w.probe("pronoun", f" {possessive}", f" {wrong_possessive}")
    w.add(f" {colour}")
    w.probe("object", f" {thing}")
    w.add(".")
    w.add(" One day,")
    w.probe("name", f" {name}")
    w.add(f" went to the {place} with")
    w.probe("pronoun", f" {possessive}", f" {wrong_possessive}")
    w.add(f" {thing}.")

    middle = [
        lambda: w.add(f" At the {place}, {subject.lower()} saw a {animal}."),
        lambda: (w.add(" There was a cat. The cat sat on the"), w.probe("mat", " mat"), w.add(".")),
        lambda: (w.add(' "Hello!" said'), w.probe("name", f" {name}"), w.add(".")),
        lambda: (
            w.add(f' "Can I play with your {thing}?" asked the {animal}. "Yes," said'),
            w.probe("name", f" {name}"),
            w.add("."),
        ),
        lambda: (
            w.add(f" {rng.choice([name, subject])} played with"),
            w.probe("pronoun", f" {possessive}", f" {wrong_possessive}"),
            w.add(f" {colour}"),
            w.probe("object", f" {thing}"),
            w.add(" all day."),
        ),
        lambda: (w.add(" Then"), w.probe("pronoun", f" {subject.lower()}", f" {wrong_subject.lower()}"),
                 w.add(f" felt {feeling}.")),
        lambda: w.add(f" {rng.choice([name, subject])} gave the {thing} to the {animal} for a while."),
        lambda: w.add(f" The {animal} sat on the grass and looked at the {colour} {thing}."),
    ]
    for scene in rng.sample(middle, k=rng.randint(3, 5)):
        scene()

    w.add(" At the end of the day,")
    w.probe("name", f" {name}")
    w.add(" went home.")
    w.add(f" {subject} was very {rng.choice(['happy', 'glad', 'tired'])}.")
    return Story(w.text, w.probes)


def generate_stories(count: int, seed: int) -> list[Story]:
    """`count` stories from one seeded generator: the same (count, seed) always gives the same list."""
    rng = random.Random(seed)
    return [write_story(rng) for _ in range(count)]


def join_stories(stories: list[Story]) -> str:
    """The training text: stories separated by the end-of-text marker."""
    return END_OF_TEXT.join(story.text for story in stories) + END_OF_TEXT


SHAKESPEARE = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt.gz"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def shakespeare_text() -> str:
    """Tiny Shakespeare (40,000 lines of the plays, public domain; the char-rnn demo text),
    shipped gzipped in data/. Its bytes are checked against the published checksum."""
    import gzip
    import hashlib

    raw = gzip.decompress(SHAKESPEARE.read_bytes())
    if hashlib.sha256(raw).hexdigest() != SHAKESPEARE_SHA256:
        raise ValueError(f"{SHAKESPEARE} is not the Tiny Shakespeare text (its checksum differs)")
    return raw.decode("utf-8")
