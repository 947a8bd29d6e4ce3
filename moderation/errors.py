"""Errors of the moderation package, each with a stable ``code``.

Gate outcomes are never errors: a missing score or a revoked token is a reason in a
Decision value. These errors are for the operator's or the caller's own mistakes: a policy
file that does not validate, a hash-list file with a bad line, a classifier configured to
reach a host it may not reach, an optional classifier whose package is not installed.
"""

from __future__ import annotations

__all__ = [
    "ClassifierConfigInvalid",
    "ClassifierHostNotAllowed",
    "ClassifierNotInstalled",
    "HashFormatUnknown",
    "HashListError",
    "HashListLineInvalid",
    "HashListUnknown",
    "HashSignalMismatch",
    "HashSignalsMixed",
    "HashValueInvalid",
    "ModerationError",
    "PolicyError",
    "PolicyKeyMissing",
    "PolicySyntaxInvalid",
    "PolicyUnknownKey",
    "PolicyValueInvalid",
    "RedteamCaseInvalid",
]


class ModerationError(Exception):
    """Base of every error raised by ``moderation``."""

    code: str = "moderation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyError(ModerationError):
    """A policy file that cannot be used; ``key`` names where (dotted path), when known."""

    code = "policy_invalid"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class PolicySyntaxInvalid(PolicyError):
    """Not UTF-8 TOML, or larger than the size limit."""

    code = "policy_syntax_invalid"


class PolicyUnknownKey(PolicyError):
    """A key the policy format does not define (a typo must not silently do nothing)."""

    code = "policy_unknown_key"


class PolicyKeyMissing(PolicyError):
    """A required key is absent."""

    code = "policy_key_missing"


class PolicyValueInvalid(PolicyError):
    """A value of the wrong type or outside its range, or values that contradict each other."""

    code = "policy_value_invalid"


class RedteamCaseInvalid(ModerationError):
    """A red-team corpus file or case that cannot be read: ``file`` names it, ``line`` the
    line its case starts on (or TOML's own line, for a syntax error) and ``key`` the key."""

    code = "redteam_case_invalid"

    def __init__(
        self, message: str, *, file: str, line: int | None = None, key: str | None = None
    ) -> None:
        where = file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.file, self.line, self.key = file, line, key


class HashListError(ModerationError):
    """Base of the hash-list errors."""

    code = "hash_list_error"


class HashValueInvalid(HashListError):
    """A perceptual hash that is not 16 hex characters (64 bits)."""

    code = "hash_value_invalid"


class HashListLineInvalid(HashListError):
    """A line of an imported CSV or JSON-lines file that does not parse; ``line`` is 1-based."""

    code = "hash_list_line_invalid"

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class HashListUnknown(HashListError):
    """A hash list the index has not been told about."""

    code = "hash_list_unknown"


class HashSignalMismatch(HashListError):
    """An entry of another signal than its list's (or its format's); ``line`` is 1-based,
    None when the list as a whole does not fit (a pHash list exported as StopNCII's)."""

    code = "hash_signal_mismatch"

    def __init__(self, message: str, *, line: int | None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


class HashSignalsMixed(HashListError):
    """An import file of more than one signal; ``line`` is the first entry of a second one."""

    code = "hash_signals_mixed"

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class HashFormatUnknown(HashListError):
    """A hash-list file format that is not one we read, or that cannot be detected."""

    code = "hash_format_unknown"


class ClassifierConfigInvalid(ModerationError):
    """A classifier configuration that cannot work (bad URL, bad timeout, bad allow-list)."""

    code = "classifier_config_invalid"


class ClassifierHostNotAllowed(ClassifierConfigInvalid):
    """The classifier URL names a host or address outside the allow-list."""

    code = "classifier_host_not_allowed"


class ClassifierNotInstalled(ModerationError):
    """An optional classifier whose package is not installed."""

    code = "classifier_not_installed"
