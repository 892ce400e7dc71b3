"""What moves a split, in words, as the apps above flags declare it.

flags never imports those apps (rollouts moves a canary split stage by stage, an experiment
splits the units between its arms), so they register a describer here from their
AppConfig.ready. The flag pages ask every describer once per page, for all the splits shown, and
add the words to the split's percentages: "v7 to 90 %, v8 to 10 % (canary, stage 2 of 4)".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flags.models import Split

# The splits -> {split id: words} for those the app moves; a split set by hand is left out.
Describer = Callable[[Sequence[Split]], dict[int, str]]

_describers: dict[str, Describer] = {}


def register(name: str, describer: Describer) -> None:
    """Register (or replace) the describer called `name`; ready() may run more than once."""
    _describers[name] = describer


def describe(splits: Sequence[Split]) -> dict[int, str]:
    words: dict[int, str] = {}
    if splits:
        for describer in _describers.values():
            words.update(describer(splits))
    return words
