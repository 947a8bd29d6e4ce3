"""verifier: C2PA verification and signing, safe image decoding, provenance assertions.

Floor 2: imports only ``keys``. ``verifier._c2pa`` is the one module that imports ``c2pa``.
"""

from __future__ import annotations

from verifier.assertion import (
    ASSERTION_TYP,
    ConsentClaim,
    DecisionClaim,
    ProvenanceClaims,
    sign_assertion,
    verify_assertion,
)
from verifier.errors import (
    AssertionImageMismatch,
    AssertionInvalid,
    AssertionMalformed,
    AssertionSignatureInvalid,
    GenerationFactsInvalid,
    ImageCorrupt,
    ImageError,
    ImageFormatNotAllowed,
    ImageTooLarge,
    ImageTooManyPixels,
    ImageTypeMismatch,
    SigningFailed,
    TrustSettingsInvalid,
    VerifierError,
)
from verifier.imaging import (
    DecodedImage,
    Hashes,
    HashVariants,
    ImageLimits,
    decode,
    hamming,
    hash_variants,
    perceptual_hashes,
    sha256_hex,
    sniff_media_type,
)
from verifier.report import (
    Action,
    CawgIdentity,
    ConsentRef,
    DecisionRef,
    Ingredient,
    Report,
    SignerInfo,
    State,
    TrainingMiningEntry,
)
from verifier.sign import GenerationFacts, IngredientRef, sign
from verifier.verify import TrustSettings, verify

__all__ = [
    "ASSERTION_TYP",
    "Action",
    "AssertionImageMismatch",
    "AssertionInvalid",
    "AssertionMalformed",
    "AssertionSignatureInvalid",
    "CawgIdentity",
    "ConsentClaim",
    "ConsentRef",
    "DecisionClaim",
    "DecisionRef",
    "DecodedImage",
    "GenerationFacts",
    "GenerationFactsInvalid",
    "HashVariants",
    "Hashes",
    "ImageCorrupt",
    "ImageError",
    "ImageFormatNotAllowed",
    "ImageLimits",
    "ImageTooLarge",
    "ImageTooManyPixels",
    "ImageTypeMismatch",
    "Ingredient",
    "IngredientRef",
    "ProvenanceClaims",
    "Report",
    "SignerInfo",
    "SigningFailed",
    "State",
    "TrainingMiningEntry",
    "TrustSettings",
    "TrustSettingsInvalid",
    "VerifierError",
    "decode",
    "hamming",
    "hash_variants",
    "perceptual_hashes",
    "sha256_hex",
    "sign",
    "sign_assertion",
    "sniff_media_type",
    "verify",
    "verify_assertion",
]
