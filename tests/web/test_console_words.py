"""The console's words for a consent check's reasons: every token reason is placed on purpose."""

from __future__ import annotations

import datetime as dt

import pytest

from moderation import ConsentCheck, Evidence, SourceEvidence, default_policy
from registry.web import console
from registry.web.console import source_lines
from verifier.tokens import Reason

# Reasons with no word of their own: the token is not one of ours at all (unreadable, a bad
# signature, another issuer). The reviewer cannot act on which of the three it was, so they
# all read as "invalid", with the codes themselves shown as the detail.
READ_AS_INVALID = frozenset({Reason.MALFORMED, Reason.SIGNATURE, Reason.ISSUER})
WORDED = {reason: (word, tone) for reason, word, tone in console._CONSENT_PROBLEMS}


def _line(*reasons: Reason):
    check = ConsentCheck(valid=False, reasons=reasons)
    source = SourceEvidence(type="photo", asset_id="photo-1", token_present=True, check=check)
    evidence = Evidence(stage="publish", received_at=dt.datetime.now(dt.UTC), sources=(source,))
    (line,) = source_lines(evidence, (), default_policy())
    return line


def test_every_reason_a_gate_answer_can_carry_has_a_word_or_is_read_as_invalid():
    # The gate's answer (registry.consent.evidence) carries any Reason: the token's own and
    # asset_mismatch / use_not_permitted. A new Reason must be placed here deliberately.
    assert WORDED.keys() | READ_AS_INVALID == set(Reason)
    assert not WORDED.keys() & READ_AS_INVALID
    assert len(WORDED) == len(console._CONSENT_PROBLEMS)


@pytest.mark.parametrize("reason", sorted(WORDED))
def test_a_worded_reason_reads_as_its_word(reason):
    line = _line(reason)
    assert (line.word, line.tone, line.detail) == (*WORDED[reason], reason.value)


@pytest.mark.parametrize("reason", sorted(READ_AS_INVALID))
def test_a_reason_without_a_word_reads_as_invalid_with_its_code(reason):
    line = _line(reason)
    assert (line.word, line.tone, line.detail) == ("invalid", "bad", reason.value)


def test_the_most_telling_reason_gives_the_word_and_every_code_is_the_detail():
    line = _line(Reason.SIGNATURE, Reason.EXPIRED, Reason.REVOKED)
    assert (line.word, line.detail) == ("revoked", "signature, expired, revoked")
