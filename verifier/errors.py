"""Errors of the verifier package, each with a stable ``code``.

Verification of image content never raises: a bad file is a Report state. These errors are
for the caller's own mistakes (bad trust configuration, an image refused by the limits, a
signing request the SDK cannot honour, a detached assertion that does not verify).
"""

from __future__ import annotations

__all__ = [
    "AssertionImageMismatch",
    "AssertionInvalid",
    "AssertionMalformed",
    "AssertionSignatureInvalid",
    "GenerationFactsInvalid",
    "ImageCorrupt",
    "ImageError",
    "ImageFormatNotAllowed",
    "ImageTooLarge",
    "ImageTooManyPixels",
    "ImageTypeMismatch",
    "SigningFailed",
    "TimestampUnavailable",
    "TrustSettingsInvalid",
    "VerifierError",
]


class VerifierError(Exception):
    """Base of every error raised by ``verifier``."""

    code: str = "verifier_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TrustSettingsInvalid(VerifierError):
    """Trust anchors or remote-fetch settings that cannot be used."""

    code = "trust_settings_invalid"


class ImageError(VerifierError):
    """An image refused before or while decoding it."""

    code = "image_error"


class ImageTooLarge(ImageError):
    """More bytes than the byte cap."""

    code = "image_too_large"


class ImageTooManyPixels(ImageError):
    """The header declares more pixels than the pixel cap."""

    code = "image_too_many_pixels"


class ImageFormatNotAllowed(ImageError):
    """The bytes are not one of the allowed formats."""

    code = "image_format_not_allowed"


class ImageTypeMismatch(ImageError):
    """The declared media type is not what the bytes are."""

    code = "image_type_mismatch"


class ImageCorrupt(ImageError):
    """The bytes claim an allowed format but do not decode."""

    code = "image_corrupt"


class GenerationFactsInvalid(VerifierError):
    """Generation facts that cannot go into a manifest (bad hash, empty id, too long)."""

    code = "generation_facts_invalid"


class SigningFailed(VerifierError):
    """The C2PA SDK could not sign the image."""

    code = "c2pa_signing_failed"


class TimestampUnavailable(SigningFailed):
    """Stamping is configured and no trusted RFC 3161 timestamp came back, so nothing is
    signed: the TSA was unreachable or answered an error (``unreachable``), its reply did not
    parse or did not match the request, e.g. another nonce (``bad_reply``), or its
    certificate does not chain to the TSA anchors (``untrusted``), or the caller's outbound
    rules refused its address (``not_allowed``). ``reason`` says which."""

    code = "timestamp_unavailable"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.extra = {"reason": reason}


class AssertionInvalid(VerifierError):
    """A detached provenance assertion that must not be believed."""

    code = "assertion_invalid"


class AssertionMalformed(AssertionInvalid):
    """Not a well-formed provenance assertion (form, header or claims)."""

    code = "assertion_malformed"


class AssertionSignatureInvalid(AssertionInvalid):
    """The signature, algorithm, typ or key of the assertion does not check out."""

    code = "assertion_signature_invalid"


class AssertionImageMismatch(AssertionInvalid):
    """The assertion is about a different image (SHA-256 differs)."""

    code = "assertion_image_mismatch"
