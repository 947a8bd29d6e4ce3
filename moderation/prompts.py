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
request. A rule without ``requires_use`` always counts. A rule with ``abusive = false`` (and
a ``requires_use``) names a transformation that is not abusive in itself, only in need of
consent (a face swap, an age change): a match asks every real-person source's consent for
the use, which without it answers ``consent_use_not_permitted``, and never counts as
``prompt_abusive_intent``.

Patterns are words separated by spaces. A word ending in ``*`` matches any word it starts
(``undress*`` matches ``undressed``); ``...`` matches up to three words in between
(``remove ... clothes`` matches "remove her clothes"); ``<1-17>`` matches a number from 1 to
17 written in digits (``she is <1-17>`` matches "she is 12", not "she is 21": digits are
never read as repeated letters, so "22" stays "22"). Both the prompt and the patterns are
normalised the same way, so obfuscations collapse:

- Unicode NFKC (full-width and mathematical letters), combining marks and invisible
  format characters (zero-width spaces, bidi marks) dropped, case folded;
- Cyrillic and Greek look-alike letters mapped to Latin ones ("cat" with a Cyrillic es and a
  reads ``cat``), and, for a prompt with Cyrillic letters, a second reading transliterated
  letter by letter (the Russian imperative "undress" reads ``razden``): folding look-alikes
  catches a Latin word spelled with Cyrillic letters, but shreds a Russian word into Latin
  fragments, so Russian rules are written in the transliteration (``_CYRILLIC``);
- Latin letters NFKC does not decompose mapped to their base letter (``\u0142`` reads ``l``);
- punctuation inside a word dropped (``un.dress``, ``n-u-d-e``), elsewhere a space;
- letters repeated in a row collapsed (``nuuude``, and ``undress`` becomes ``undres``);
- single letters joined to the word before them (``und r e s s``), and runs of single
  letters joined into one word (``photo u n d r e s s now``; a wider gap of two or more
  spaces ends a word: ``r e m o v e   c l o t h e s``); a run of four letters or more,
  whose word breaks are lost (``a n a k e d c h i l d``), is also searched for the one-word
  patterns anywhere inside it;
- leetspeak read both ways (``nud3`` as ``nude``, ``533`` as ``see``, and ``1girl`` as
  written), and, in a prompt with digits, with numbers kept beside leetspeak words
  (``4g3d 17`` as ``aged 17``). A word leetspeak turns wholly into digits, beside a number
  (``15 17`` for "is 17"), cannot be told from one and is read as a number.

``languages`` (optional) lists the language tags (``en``, ``es``, ``pt-br``) the rule's
patterns are written in. It documents the rule and lets a policy author see which languages
it covers; it does not gate matching: every rule is matched against every prompt, whatever
its language, because language detection on a prompt of a few words is unreliable and
prompts mix languages ("make her desnuda"). A rule for another language costs one more
pattern list, never a missed prompt. Patterns are written without accents, since accents
are dropped from prompts before matching (``déshabiller`` reads as ``deshabiller``).

Results carry rule ids and, per rule, the normalised fragment each of its groups matched
(``PromptMatch``): what a reviewer needs to see why, and never the raw prompt.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "MAX_PROMPT_CHARS",
    "PromptIntent",
    "PromptMatch",
    "PromptMatcher",
    "PromptRule",
    "Scope",
    "compile_rules",
    "language_problem",
    "normalise",
    "pattern_problem",
]

Scope: TypeAlias = Literal["real_person", "any"]
# Request validation caps prompts well below this; the cap bounds the work here regardless.
MAX_PROMPT_CHARS = 20_000
_GAP_WORDS = 3
_MIN_SINGLE_WORD = 3
_MIN_RUN = 4
_PATTERN_WORD = re.compile(r"[a-z0-9]+\*?")
_NUMBER_RANGE = re.compile(r"<([0-9]{1,3})-([0-9]{1,3})>")
# Cyrillic, Greek and Armenian letters that look like Latin ones, Latin small capitals and
# dotless or other variant letters NFKC leaves alone (as escapes, so the source shows which
# is which), and the Latin letter each stands for.
_CONFUSABLES = str.maketrans(
    "\u0430\u0432\u0435\u0451\u0437\u0456\u0457\u0458\u043a\u043c\u043d\u043e\u0440\u0441"
    "\u0442\u0443\u0445\u0455\u0501\u04bb\u051b\u051d\u04af\u0261\u03b1\u03b2\u03b5\u03b7"
    "\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03c9\u03c2\u03c3"
    "\u04cf\u0491\u0578\u057d\u0585\u0131\u0251\u0269\u1d00\u0299\u1d04\u1d05\u1d07"
    "\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d\u0274\u1d0f\u1d18\u0280\ua731"
    "\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22\u0142\u0111\u00f8\u0127\u0167\u0180",
    "abee3iijkmhopctyxsdhqwygabenikvoptuxwsolrnuoiaiabcdefghijklmnoprstuvwyzldohtb",
)
# Russian's 32 lower-case letters, U+0430 to U+044F in alphabetical order, then
# Ukrainian's and Belarusian's own, each as the Latin letters it is written with: a simple,
# accent-free transliteration close to the common Russian one (zh, kh, shch; the short i
# as i, the hard and soft signs as nothing). Rules name Russian words in it: "razden" for
# the imperative "undress", "goloi" for "naked" (feminine, instrumental).
_RUSSIAN = (
    *("a", "b", "v", "g", "d", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p"),
    *("r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"),
)
_CYRILLIC = str.maketrans(
    {chr(0x430 + i): latin for i, latin in enumerate(_RUSSIAN)}
    | {"\u0451": "e", "\u0454": "e", "\u0456": "i", "\u0457": "i", "\u045e": "u", "\u0491": "g"}
)
_HAS_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LEET_DIGITS = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})
_LEET_SYMBOLS = {"@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}
_INNER_PUNCT = re.compile(r"(?<=[a-z0-9])[^\sa-z0-9]+(?=[a-z0-9])")
_OTHER = re.compile(r"[^a-z0-9]+")
# Letters only: "nuuude" is "nude", but "22" is not "2".
_REPEATS = re.compile(r"([a-z])\1+")
_WIDE_GAP = re.compile(r"\s{2,}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")
_ALNUM = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"[0-9]")


class PromptRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    scope: Scope
    any: tuple[str, ...] = ()
    all: tuple[tuple[str, ...], ...] = ()
    requires_use: str | None = None
    languages: tuple[str, ...] = ()
    abusive: bool = True


class PromptMatch(msgspec.Struct, frozen=True, kw_only=True):
    """A rule that matched and the normalised fragment each of its groups matched."""

    rule: str
    fragments: tuple[str, ...]


class PromptIntent(msgspec.Struct, frozen=True, kw_only=True):
    """Ids of the rules that matched, in policy order, with what they matched on;
    ``truncated`` if the prompt was cut."""

    matched: tuple[str, ...] = ()
    matches: tuple[PromptMatch, ...] = ()
    truncated: bool = False


def language_problem(tag: str) -> str | None:
    """Why ``tag`` is not a language tag a rule may state, or None when it is."""
    if _LANGUAGE.fullmatch(tag) is None:
        return "not a lowercase language tag (e.g. 'en', 'es', 'pt-br')"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid pattern, or None when it is."""
    words = pattern.split()
    if not words:
        return "a pattern needs at least one word"
    if words[0] == "..." or words[-1] == "...":
        return "'...' may only stand between words"
    for word in words:
        problem = _word_problem(word, alone=len(words) == 1)
        if problem is not None:
            return problem
    if len(words) == 1 and len(_REPEATS.sub(r"\1", words[0].rstrip("*"))) < _MIN_SINGLE_WORD:
        # Repeated letters collapse ("xxx" reads as "x"), which would match far too much.
        return "a one-word pattern needs at least 3 letters once repeated letters collapse"
    return None


def _word_problem(word: str, *, alone: bool) -> str | None:
    if word == "...":
        return None
    numbers = _NUMBER_RANGE.fullmatch(word)
    if numbers is not None:
        if int(numbers[1]) > int(numbers[2]):
            return f"{word!r} is not a range: its first number is the larger"
        return "a number range needs a word beside it" if alone else None
    if _PATTERN_WORD.fullmatch(word) is None:
        return (
            f"{word[:32]!r} is not a lowercase word (a-z, 0-9, optional trailing *)"
            " or a number range (<1-17>)"
        )
    return None


def normalise(text: str) -> tuple[str, ...]:
    """The normalised readings of ``text``: words joined by single spaces, one per view."""
    views: list[str] = []
    for folded in _readings(text):
        bases: list[tuple[str, Callable[[str], str]]] = [(folded, _same), (_leet(folded), _same)]
        if _DIGIT.search(folded) is not None:
            # Leetspeak beside a number ("4g3d 17"): digits read as letters in the words
            # that have letters, numbers kept, once the spaced letters are joined.
            bases.append((_leet_symbols(folded), _leet_mixed))
        for base, after in bases:
            for joined in (True, False):
                words = _OTHER.sub(" ", _INNER_PUNCT.sub("", base) if joined else base).split()
                words = [_REPEATS.sub(r"\1", word) for word in words]
                views.append(after(" ".join(words)))
                views.append(after(" ".join(_join_single_letters(words))))
            views.append(after(" ".join(_join_letter_runs(base))))
    return tuple(dict.fromkeys(views))


class PromptMatcher:
    """Compiled rules; :meth:`check` runs them over one prompt."""

    __slots__ = ("_compiled",)

    def __init__(self, rules: Sequence[PromptRule]) -> None:
        self._compiled = tuple(
            (rule.id, tuple((_group_regex(group), _soup_regex(group)) for group in _groups(rule)))
            for rule in rules
        )

    def check(self, prompt: str) -> PromptIntent:
        truncated = len(prompt) > MAX_PROMPT_CHARS
        views = normalise(prompt[:MAX_PROMPT_CHARS])
        # A run a rule reads as one word ("s e x y") is that word, also after a leading "a"
        # or "i" ("a n u d e"); only the others are searched inside.
        words: list[str] = []
        runs: list[str] = []
        for run in letter_runs(prompt[:MAX_PROMPT_CHARS]):
            if self._word(run):
                continue
            if run[0] in "ai" and self._word(run[1:]):
                words.append(run[1:])
            else:
                runs.append(run)
        views = (*views, *words)
        matches = []
        for rule_id, groups in self._compiled:
            fragments = [_first_match(group, soup, views, runs) for group, soup in groups]
            if all(fragment is not None for fragment in fragments):
                matches.append(PromptMatch(rule=rule_id, fragments=tuple(filter(None, fragments))))
        return PromptIntent(
            matched=tuple(m.rule for m in matches), matches=tuple(matches), truncated=truncated
        )

    def _word(self, run: str) -> bool:
        """Whether a rule reads ``run`` as one whole word."""
        return any(
            group.fullmatch(run) is not None for _, groups in self._compiled for group, _ in groups
        )


def letter_runs(text: str) -> tuple[str, ...]:
    """The runs of at least four spaced single letters in ``text``, each joined into one
    string ("a n a k e d c h i l d" -> "anakedchild"), in both leetspeak readings.

    A run has lost its word breaks ("a" and "child" run into the spelled word), so the
    one-word patterns are searched inside it without word boundaries. Four letters at
    least: shorter runs are initials ("U S A"), whose letters would match too much.
    """
    runs: list[str] = []
    for folded in _readings(text):
        for base in (folded, _leet(folded)):
            runs.extend(run for run in _letter_runs(base)[1] if len(run) >= _MIN_RUN)
    return tuple(dict.fromkeys(runs))


def _first_match(
    group: re.Pattern[str],
    soup: re.Pattern[str] | None,
    views: Sequence[str],
    runs: Sequence[str],
) -> str | None:
    for view in views:
        found = group.search(view)
        if found is not None:
            return found.group()
    if soup is not None:
        for run in runs:
            found = soup.search(run)
            if found is not None:
                return found.group()
    return None


@functools.lru_cache(maxsize=16)
def compile_rules(rules: tuple[PromptRule, ...]) -> PromptMatcher:
    """A matcher for ``rules``; cached, since a policy's rules do not change."""
    return PromptMatcher(rules)


def _groups(rule: PromptRule) -> tuple[tuple[str, ...], ...]:
    return (rule.any,) if rule.any else rule.all


def _group_regex(patterns: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(_pattern_regex(pattern) for pattern in patterns)
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def _soup_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """The group's one-word patterns without word boundaries, for letter runs (None when
    the group has none: a run holds no word breaks for a phrase to span)."""
    stems = [
        re.escape(_REPEATS.sub(r"\1", _fold(pattern.rstrip("*"))))
        for pattern in patterns
        if " " not in pattern
    ]
    return re.compile("|".join(stems)) if stems else None


def _pattern_regex(pattern: str) -> str:
    parts = []
    for word in pattern.split():
        if word == "...":
            parts.append(rf"(?:[a-z0-9]+ ){{0,{_GAP_WORDS}}}")
            continue
        numbers = _NUMBER_RANGE.fullmatch(word)
        if numbers is not None:
            # Longest first, so "12" is not read as "1" followed by a stray "2".
            values = sorted(range(int(numbers[1]), int(numbers[2]) + 1), key=lambda n: -len(str(n)))
            parts.append("(?:" + "|".join(str(n) for n in values) + ") ")
            continue
        stem = _REPEATS.sub(r"\1", _fold(word.rstrip("*")))
        parts.append(re.escape(stem) + ("[a-z0-9]*" if word.endswith("*") else "") + " ")
    return "".join(parts)[:-1]


def _readings(text: str) -> tuple[str, ...]:
    """``text`` folded with look-alikes mapped, and, when it has Cyrillic letters, folded
    with them transliterated instead."""
    if _HAS_CYRILLIC.search(text) is None:
        return (_fold(text),)
    return _fold(text), _fold(text, transliterate=True)


def _fold(text: str, *, transliterate: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Cf"})
    # The short i and yo (U+0439, U+0451) decompose, and their marks were just dropped: the
    # transliteration reads i and e for them, as for the letters they are made from.
    folded = unicodedata.normalize("NFC", kept).casefold()
    if transliterate:
        folded = folded.translate(_CYRILLIC)
    return folded.translate(_CONFUSABLES)


def _leet(text: str) -> str:
    # Digits become letters in every word of this view, numbers too ("533" reads "see"): the
    # view without leetspeak still reads "2024" as written, so nothing is lost.
    return _leet_symbols(text).translate(_LEET_DIGITS)


def _leet_symbols(text: str) -> str:
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch in _LEET_SYMBOLS and _letter_next_to(chars, i):
            chars[i] = _LEET_SYMBOLS[ch]
    return "".join(chars)


def _leet_mixed(view: str) -> str:
    """``view`` with digits read as letters in its words that have letters ("nud3"), its
    numbers ("17") as written."""
    return _ALNUM.sub(_leet_mixed_word, view)


def _leet_mixed_word(found: re.Match[str]) -> str:
    word = found.group()
    return word if word.isdigit() else _REPEATS.sub(r"\1", word.translate(_LEET_DIGITS))


def _same(view: str) -> str:
    return view


def _letter_next_to(chars: list[str], i: int) -> bool:
    before = i > 0 and chars[i - 1].isalpha()
    after = i + 1 < len(chars) and chars[i + 1].isalpha()
    # Trailing '!' or '$' is punctuation; inside or at the start of a word it stands for a letter.
    return after or (before and i + 1 < len(chars) and chars[i + 1] in _LEET_SYMBOLS)


def _join_letter_runs(text: str) -> list[str]:
    """Join each run of two or more single letters into one word ("photo u n d r e s s
    now" -> "photo undress now"); two or more spaces end a run, as between words."""
    return _letter_runs(text)[0]


def _letter_runs(text: str) -> tuple[list[str], list[str]]:
    """The words of ``text`` with runs of single letters joined, and the joined runs."""
    out: list[str] = []
    runs: list[str] = []
    for segment in _WIDE_GAP.split(text):
        run: list[str] = []
        for word in [*_OTHER.sub(" ", segment).split(), ""]:
            if len(word) == 1:
                run.append(word)
                continue
            if run:
                joined = _REPEATS.sub(r"\1", "".join(run))
                out.append(joined)
                if len(run) > 1:
                    runs.append(joined)
                run = []
            if word:
                out.append(_REPEATS.sub(r"\1", word))
    return out, runs


def _join_single_letters(words: list[str]) -> list[str]:
    """Attach each single-letter word to the word before it: "und r e s s" -> "undress"."""
    out: list[str] = []
    for word in words:
        if out and len(word) == 1:
            out[-1] += word
        else:
            out.append(word)
    return [_REPEATS.sub(r"\1", word) for word in out]
