"""Templated sentences of the synthetic corpus: one meaning rendered in MSA and in every dialect.

The templates, the concept forms (a subset of the lexicon) and the open classes live in
`kdlib/corpus/resources/grammar.yaml`. A :class:`Meaning` is a template with its fillers drawn; its
renderings differ only in the concept and function words, so the MSA rendering is what a
subtitler writes for a dialect clip, and the lexicon recognises the swaps between them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from kdlib.corpus.resources import VARIETIES

SLOT = re.compile(r"\{(\w+)\}")


def grammar_path() -> Path:
    """Path of the shipped grammar."""
    return Path(__file__).parent / "resources" / "grammar.yaml"


@dataclass(frozen=True)
class Grammar:
    """Templates over concepts (a form per variety), function words and open classes."""

    concepts: dict[str, dict[str, str]]
    words: dict[str, dict[str, str]]
    fillers: dict[str, tuple[str, ...]]
    templates: tuple[str, ...]

    def form(self, slot: str, variety: str) -> str:
        """The word of a concept or function-word slot in `variety` (a concept falls back on MSA)."""
        if slot in self.concepts:
            forms = self.concepts[slot]
            return forms.get(variety, forms["MSA"])
        return self.words[slot][variety]


@cache
def read_grammar(path: Path | None = None) -> Grammar:
    """The grammar of `path` (default: the shipped one), checked: every slot of every template and
    filler is defined, and every concept and function word has an MSA form."""
    path = grammar_path() if path is None else Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    grammar = Grammar(
        concepts={name: dict(forms) for name, forms in raw["concepts"].items()},
        words={name: dict(forms) for name, forms in raw["words"].items()},
        fillers={name: tuple(str(value) for value in values) for name, values in raw["fillers"].items()},
        templates=tuple(raw["templates"]),
    )
    defined = set(grammar.concepts) | set(grammar.words) | set(grammar.fillers)
    for line in (*grammar.templates, *(value for values in grammar.fillers.values() for value in values)):
        unknown = set(SLOT.findall(line)) - defined
        if unknown:
            raise ValueError(f"{path}: {line!r} uses undefined slots {sorted(unknown)}")
    for name, forms in {**grammar.concepts, **grammar.words}.items():
        if "MSA" not in forms or set(forms) - set(VARIETIES):
            raise ValueError(f"{path}: {name!r} needs an MSA form and only the varieties {VARIETIES}: {forms}")
    return grammar


@dataclass(frozen=True)
class Meaning:
    """A template with its open-class fillers drawn (including nested slots of a filler)."""

    template: str
    fillers: tuple[tuple[str, str], ...]  # (slot, chosen value) in the template's order

    def render(self, grammar: Grammar, variety: str) -> str:
        """The sentence in `variety`: concept and function words in its forms, fillers as drawn."""
        chosen = iter(value for _, value in self.fillers)

        def expand(text: str) -> str:
            def word(match: re.Match) -> str:
                slot = match.group(1)
                return expand(next(chosen)) if slot in grammar.fillers else grammar.form(slot, variety)

            return SLOT.sub(word, text)

        return " ".join(expand(self.template).split())


def draw_meaning(grammar: Grammar, rng: random.Random) -> Meaning:
    """A template and its fillers, drawn uniformly."""
    template = rng.choice(grammar.templates)
    fillers: list[tuple[str, str]] = []

    def draw(text: str) -> None:
        for slot in SLOT.findall(text):
            if slot in grammar.fillers:
                value = rng.choice(grammar.fillers[slot])
                fillers.append((slot, value))
                draw(value)

    draw(template)
    return Meaning(template, tuple(fillers))


def distinct_meanings(grammar: Grammar, count: int, seed: int) -> list[Meaning]:
    """`count` meanings whose renderings share no sentence with each other in any variety (seeded).

    Raises ValueError when the grammar cannot make that many."""
    rng = random.Random(seed)
    meanings: list[Meaning] = []
    seen: set[str] = set()
    attempts = 0
    while len(meanings) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"the grammar makes only {len(meanings)} distinct sentences of the {count} asked for")
        meaning = draw_meaning(grammar, rng)
        texts = {meaning.render(grammar, variety) for variety in VARIETIES}
        if texts & seen:
            continue
        seen |= texts
        meanings.append(meaning)
    return meanings
