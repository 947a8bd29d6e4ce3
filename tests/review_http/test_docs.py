"""docs/publishers.md explains every reason code the gate can give, from the code's source."""

from __future__ import annotations

from pathlib import Path

from moderation import default_policy
from moderation.reasons import REASONS, SCORE_BANDS, score_code
from registry.review.reasons_doc import TABLE_END, TABLE_START, reason_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "publishers.md"


def test_the_reason_table_is_the_generated_one():
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    assert text[start:end] == reason_table(), (
        "regenerate the table with: python -m registry.review.reasons_doc"
    )


def test_every_reason_code_is_documented():
    text = DOC.read_text(encoding="utf-8")
    codes = list(REASONS) + [
        score_code(rule.category, band) for rule in default_policy().scores for band in SCORE_BANDS
    ]
    missing = [code for code in codes if f"| `{code}` |" not in text]
    assert missing == []
