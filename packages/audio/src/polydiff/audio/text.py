"""Deterministic English sentences for the eSpeak corpus: a small grammar over a fixed vocabulary.

Each seed gives the same list of distinct sentences (subject, verb, object, optional place and time phrases,
questions and exclamations), so a corpus is rebuilt exactly without downloading any text.
"""

from __future__ import annotations

import random
import re

__all__ = ["make_sentences", "vocabulary"]

_ADJECTIVES = ("quiet", "bright", "heavy", "little", "ancient", "yellow", "clever", "gentle", "sudden", "narrow",
               "broken", "golden", "silver", "curious", "hungry", "distant", "empty", "frozen", "careful", "noisy",
               "tall", "wooden", "patient", "rapid", "strange", "warm", "lonely", "proud", "simple", "busy")
_NOUNS = ("farmer", "teacher", "river", "window", "garden", "captain", "kitten", "letter", "mountain", "doctor",
          "engine", "village", "basket", "painter", "student", "bridge", "forest", "market", "sailor", "machine",
          "museum", "orange", "pilot", "rabbit", "singer", "station", "tower", "violin", "wagon", "lantern",
          "kitchen", "harbor", "island", "journal", "ladder", "mirror", "notebook", "pencil", "planet", "rocket")
_VERBS = ("found", "painted", "carried", "watched", "followed", "opened", "repaired", "measured", "described",
          "visited", "borrowed", "cleaned", "counted", "covered", "dropped", "noticed", "ordered", "pushed",
          "reached", "remembered", "washed", "wrapped", "tested", "moved", "lifted", "packed", "chased", "built")
_PLACES = ("near the old station", "behind the wooden fence", "across the narrow bridge", "inside the busy market",
           "under the tall tower", "beside the frozen river", "at the edge of the forest", "on the top shelf",
           "in the empty kitchen", "along the quiet harbor", "over the distant hills", "by the open window")
_TIMES = ("yesterday morning", "every evening", "before sunrise", "after the storm", "last winter",
          "on a rainy Tuesday", "at noon", "during the long summer", "twice a week", "late at night",
          "in nineteen eighty four", "at half past seven")
_NAMES = ("Anna", "Peter", "Maria", "Thomas", "Helen", "Oscar", "Laura", "Victor", "Emma", "Daniel", "Sofia",
          "Martin")
_NUMBERS = ("two", "three", "four", "five", "seven", "nine", "twelve", "twenty", "forty", "a hundred")


def _noun_phrase(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.2:
        return rng.choice(_NAMES)
    if kind < 0.35:
        return f"{rng.choice(_NUMBERS)} {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}s"
    article = rng.choice(("the", "a", "my", "her", "our", "that"))
    adjective = rng.choice(_ADJECTIVES)
    if article == "a" and adjective[0] in "aeiou":
        article = "an"
    return f"{article} {adjective} {rng.choice(_NOUNS)}"


def _sentence(rng: random.Random) -> str:
    subject, obj = _noun_phrase(rng), _noun_phrase(rng)
    verb = rng.choice(_VERBS)
    kind = rng.random()
    extra = []
    if rng.random() < 0.6:
        extra.append(rng.choice(_PLACES))
    if rng.random() < 0.5:
        extra.append(rng.choice(_TIMES))
    tail = (" " + " ".join(extra)) if extra else ""
    if kind < 0.15:
        base = verb[:-2] if verb.endswith("ed") else verb
        base = {"carri": "carry", "stud": "study", "describ": "describe", "measur": "measure", "cover": "cover",
                "remember": "remember", "notic": "notice", "wrapp": "wrap", "dropp": "drop", "mov": "move",
                "chas": "chase", "pack": "pack"}.get(base, base)
        if verb in ("found", "built"):
            base = {"found": "find", "built": "build"}[verb]
        return f"Did {subject} {base} {obj}{tail}?"
    if kind < 0.25:
        return f"{subject[0].upper()}{subject[1:]} {verb} {obj}{tail}!"
    if kind < 0.45:
        second = _noun_phrase(rng)
        return (f"{subject[0].upper()}{subject[1:]} {verb} {obj}{tail}, and then {second} "
                f"{rng.choice(_VERBS)} it.")
    return f"{subject[0].upper()}{subject[1:]} {verb} {obj}{tail}."


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct sentences, the same for the same seed."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count: expected a positive int, got {count!r}")
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"count: the grammar cannot make {count} distinct sentences")
        seen.setdefault(_sentence(rng), None)
    return list(seen)


def vocabulary() -> list[str]:
    """The lower-case words of the sentence grammar (the corpus' word list, whatever the seed), sorted: its word
    tuples plus the words of 20000 generated sentences (function words and the verbs' base forms)."""
    rng = random.Random(0)
    phrases = (*_ADJECTIVES, *_NOUNS, *_VERBS, *_PLACES, *_TIMES, *_NAMES, *_NUMBERS,
               *(_sentence(rng) for _ in range(20000)))
    return sorted({w for phrase in phrases for w in re.findall(r"[a-z']+", phrase.lower())})
