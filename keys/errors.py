"""Errors of the keys package, each with a stable ``code``.

Messages describe what was wrong with an input, never the key material involved.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base of every error raised by ``keys``."""

    code: str = "keys_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedJWS(KeysError):
    """The token is not a well-formed compact JWS."""

    code = "malformed"


class AlgorithmNotAllowed(KeysError):
    """The algorithm is not on the allow-list, or does not fit the key."""

    code = "algorithm_not_allowed"


class SignatureInvalid(KeysError):
    """The signature does not verify with the resolved key."""

    code = "signature_invalid"


class UnknownKey(KeysError):
    """No key is known for the token's header."""

    code = "unknown_key"


class TypMismatch(KeysError):
    """The token's ``typ`` header is not the one expected."""

    code = "typ_mismatch"


class CritUnsupported(KeysError):
    """The token names critical header parameters, none of which we implement."""

    code = "crit_unsupported"


class InvalidJWK(KeysError):
    """A JWK is malformed, private, or names a key we do not accept."""

    code = "invalid_jwk"


class MasterKeyInvalid(KeysError):
    """The configured master key is not 32 bytes in an accepted encoding."""

    code = "master_key_invalid"


class KeyDecryptionFailed(KeysError):
    """A stored private key did not decrypt: wrong master key or tampered row."""

    code = "key_decryption_failed"


class RotationInProgress(KeysError):
    """Another rotation holds the rotation lock."""

    code = "rotation_in_progress"


class NoActiveKey(KeysError):
    """The key ring has no active key: it was not started, or the table was emptied."""

    code = "no_active_key"
