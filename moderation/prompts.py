"""Prompt-intent rules: a heuristic first line against abusive prompts about real people.

This is deliberately simple and is documented as such: word lists catch the obvious cases
(undressing, nudifying, sexualising a person in a reference photo, sexualising minors) cheaply
and before any image exists. They cannot catch every paraphrase; the real controls are the
consent uses each output needs and the classifier scores of the output.

A rule (from the policy) has an ``id``, a ``scope`` (``real_person``: only when a source is a
real-person photo; ``any``: always) and either ``any`` (one of these patterns) or ``all``
(every group has at least one pattern present). ``requires_use`` names a consent use that
makes the intent legitimate (e.g. ``content.explicit`` for undressing): when every
real-person source's consent grants it, the match is recorded but not held against the
request. A rule without ``requires_use`` always counts.

Patterns are words separated by spaces. A word ending in ``*`` matches any word it starts
(``undress*`` matches ``undressed``); ``...`` matches up to three words in between
(``remove ... clothes`` matches "remove her clothes"). Both the prompt and the patterns are
normalised the same way, so obfuscations collapse:

- Unicode NFKC (full-width and mathematical letters), combining marks and invisible
  format characters (zero-width spaces, bidi marks) dropped, case folded;
- Cyrillic and Greek look-alike letters mapped to Latin ones;
- punctuation inside a word dropped (``un.dress``, ``n-u-d-e``), elsewhere a space;
- letters repeated in a row collapsed (``nuuude``, and ``undress`` becomes ``undres``);
- single letters joined to the word before them (``u n d r e s s``, ``und r e s s``);
- leetspeak read both ways (``nud3`` as ``nude``, and ``1girl`` as written).

Results carry rule ids only: the prompt itself is never repeated into results or logs.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_PROMPT_CHARS",
    "PromptIntent",
    "PromptMatcher",
    "PromptRule",
    "Scope",
    "compile_rules",
    "normalise",
    "pattern_problem",
]

Scope: TypeAlias = Literal["real_person", "any"]
# Request validation caps prompts well below this; the cap bounds the work here regardless.
MAX_PROMPT_CHARS = 20_000
_GAP_WORDS = 3
_MIN_SINGLE_WORD = 3
_PATTERN_WORD = re.compile(r"[a-z0-9]+\*?")
# Cyrillic and Greek letters that look like Latin ones (as escapes, so the source shows
# which is which), and the Latin letter each stands for.
_CONFUSABLES = str.maketrans(
    "\u0430\u0432\u0435\u0451\u0437\u0456\u0457\u0458\u043a\u043c\u043d\u043e\u0440\u0441"
    "\u0442\u0443\u0445\u0455\u0501\u04bb\u051b\u051d\u04af\u0261\u03b1\u03b2\u03b5\u03b7"
    "\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03c9\u03c2\u03c3",
    "abee3iijkmhopctyxsdhqwygabenikvoptuxwso",
)
_LEET_DIGITS = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})
_LEET_SYMBOLS = {"@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}
_INNER_PUNCT = re.compile(r"(?<=[a-z0-9])[^\sa-z0-9]+(?=[a-z0-9])")
_OTHER = re.compile(r"[^a-z0-9]+")
_REPEATS = re.compile(r"(.)\1+")
_ALNUM = re.compile(r"[a-z0-9]+")
_LETTER = re.compile(r"[a-z]")


class PromptRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    scope: Scope
    any: tuple[str, ...] = ()
    all: tuple[tuple[str, ...], ...] = ()
    requires_use: str | None = None


class PromptIntent(msgspec.Struct, frozen=True, kw_only=True):
    """Ids of the rules that matched, in policy order; ``truncated`` if the prompt was cut."""

    matched: tuple[str, ...] = ()
    truncated: bool = False


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid pattern, or None when it is."""
    words = pattern.split()
    if not words:
        return "a pattern needs at least one word"
    if words[0] == "..." or words[-1] == "...":
        return "'...' may only stand between words"
    for word in words:
        if word != "..." and _PATTERN_WORD.fullmatch(word) is None:
            return f"{word[:32]!r} is not a lowercase word (a-z, 0-9, optional trailing *)"
    if len(words) == 1 and len(_REPEATS.sub(r"\1", words[0].rstrip("*"))) < _MIN_SINGLE_WORD:
        # Repeated letters collapse ("xxx" reads as "x"), which would match far too much.
        return "a one-word pattern needs at least 3 letters once repeated letters collapse"
    return None


def normalise(text: str) -> tuple[str, ...]:
    """The normalised readings of ``text``: words joined by single spaces, one per view."""
    folded = _fold(text)
    views: list[str] = []
    for leet in (False, True):
        base = _leet(folded) if leet else folded
        for joined in (True, False):
            words = _OTHER.sub(" ", _INNER_PUNCT.sub("", base) if joined else base).split()
            words = [_REPEATS.sub(r"\1", word) for word in words]
            views.append(" ".join(words))
            views.append(" ".join(_join_single_letters(words)))
    return tuple(dict.fromkeys(views))


class PromptMatcher:
    """Compiled rules; :meth:`check` runs them over one prompt."""

    __slots__ = ("_compiled",)

    def __init__(self, rules: Sequence[PromptRule]) -> None:
        self._compiled = tuple(
            (rule.id, tuple(_group_regex(group) for group in _groups(rule))) for rule in rules
        )

    def check(self, prompt: str) -> PromptIntent:
        truncated = len(prompt) > MAX_PROMPT_CHARS
        views = normalise(prompt[:MAX_PROMPT_CHARS])
        matched = tuple(
            rule_id
            for rule_id, groups in self._compiled
            if all(any(group.search(view) for view in views) for group in groups)
        )
        return PromptIntent(matched=matched, truncated=truncated)


@functools.lru_cache(maxsize=16)
def compile_rules(rules: tuple[PromptRule, ...]) -> PromptMatcher:
    """A matcher for ``rules``; cached, since a policy's rules do not change."""
    return PromptMatcher(rules)


def _groups(rule: PromptRule) -> tuple[tuple[str, ...], ...]:
    return (rule.any,) if rule.any else rule.all


def _group_regex(patterns: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(_pattern_regex(pattern) for pattern in patterns)
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def _pattern_regex(pattern: str) -> str:
    parts = []
    for word in pattern.split():
        if word == "...":
            parts.append(rf"(?:[a-z0-9]+ ){{0,{_GAP_WORDS}}}")
            continue
        stem = _REPEATS.sub(r"\1", _fold(word.rstrip("*")))
        parts.append(re.escape(stem) + ("[a-z0-9]*" if word.endswith("*") else "") + " ")
    return "".join(parts)[:-1]


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Cf"})
    return unicodedata.normalize("NFC", kept).casefold().translate(_CONFUSABLES)


def _leet(text: str) -> str:
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch in _LEET_SYMBOLS and _letter_next_to(chars, i):
            chars[i] = _LEET_SYMBOLS[ch]
    # Digits become letters inside words that also have letters ("nud3") and when they stand
    # alone ("n u d 3"), not in numbers ("2024").
    return _ALNUM.sub(_leet_word, "".join(chars))


def _leet_word(found: re.Match[str]) -> str:
    word = found.group()
    if len(word) == 1 or _LETTER.search(word):
        return word.translate(_LEET_DIGITS)
    return word


def _letter_next_to(chars: list[str], i: int) -> bool:
    before = i > 0 and chars[i - 1].isalpha()
    after = i + 1 < len(chars) and chars[i + 1].isalpha()
    # Trailing '!' or '$' is punctuation; inside or at the start of a word it stands for a letter.
    return after or (before and i + 1 < len(chars) and chars[i + 1] in _LEET_SYMBOLS)


def _join_single_letters(words: list[str]) -> list[str]:
    """Attach each single-letter word to the word before it: "und r e s s" -> "undress"."""
    out: list[str] = []
    for word in words:
        if out and len(word) == 1:
            out[-1] += word
        else:
            out.append(word)
    return [_REPEATS.sub(r"\1", word) for word in out]
