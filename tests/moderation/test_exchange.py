"""Hash-list files of every format: samples as the exchanges write them, round trips, bad lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from moderation.errors import (
    HashFormatUnknown,
    HashListLineInvalid,
    HashSignalMismatch,
    HashSignalsMixed,
    HashValueInvalid,
)
from moderation.exchange import (
    FORMATS,
    MAX_FIELD_CHARS,
    MAX_LINE_BYTES,
    ExportEntry,
    ImportEntry,
    detect_format,
    read_entries,
    write_entries,
)
from moderation.signals import parse_hash, pdq_hash
from tests.moderation.support import make_image
from verifier import imaging

# python-threatexchange's PdqSignal examples (pdq/data/bridge-mods), and the hashes its
# StopNCII client test fetches: real PDQ hashes as the exchanges carry them.
BRIDGE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
NCII = (
    "2afc4a5c09628a7961c14d436493bba66b89b831453baa1d556ba385554daa82",
    "79e07de27d7295339435d63cd31cf35a7bfa29eb2885008500a588a5ea3ae75a",
    "9def0b7dafa86a1c90f2abd78e79ceb25ec3d1a4b3d4bc7a4354baf7717ea038",
)


@pytest.fixture(scope="module")
def pdqs() -> list[str]:
    """PDQ hashes of three Pillow pictures."""
    return [pdq_hash(make_image(seed=seed))[0] for seed in (1, 2, 3)]


@pytest.fixture(scope="module")
def phashes() -> list[str]:
    return [imaging.phash(make_image(seed=seed)) for seed in (1, 2, 3)]


def lines(text: str) -> list[bytes]:
    return text.encode("utf-8").splitlines(keepends=True)


def read(text: str, fmt, signal="pdq") -> list[ImportEntry]:
    return list(read_entries(lines(text), fmt, signal=signal))


def refused(
    text: str | list[bytes], fmt, signal="pdq"
) -> HashListLineInvalid | HashSignalMismatch | HashSignalsMixed:
    raw = lines(text) if isinstance(text, str) else text
    with pytest.raises((HashListLineInvalid, HashSignalMismatch, HashSignalsMixed)) as caught:
        list(read_entries(raw, fmt, signal=signal))
    return caught.value


# Samples of every format.


def test_csv_sample_with_header_bom_and_crlf(pdqs):
    text = (
        "\ufeffhash,label,source,reviewed\r\n"
        f"{pdqs[0]},protected portrait,consent:asset-17,true\r\n"
        "\r\n"
        f'{pdqs[1].upper()},"Smith, J. (takedown)",,false\r\n'
        f"{pdqs[2]},  no source \r\n"
    )
    assert read(text, "csv") == [
        ImportEntry(
            signal="pdq",
            hash=parse_hash("pdq", pdqs[0]),
            label="protected portrait",
            source="consent:asset-17",
        ),
        ImportEntry(
            signal="pdq",
            hash=parse_hash("pdq", pdqs[1]),
            label="Smith, J. (takedown)",
            reviewed=False,
        ),
        ImportEntry(signal="pdq", hash=parse_hash("pdq", pdqs[2]), label="no source"),
    ]


def test_csv_of_phashes_without_header(phashes):
    text = f"{phashes[0]},one\n{phashes[1]},two,src\n"
    entries = read(text, "csv", signal="phash")
    assert [(e.signal, e.hash.hex(), e.label, e.source) for e in entries] == [
        ("phash", phashes[0], "one", None),
        ("phash", phashes[1], "two", "src"),
    ]


def test_jsonl_sample(pdqs, phashes):
    rows = [
        {"hash": pdqs[0], "label": "banked", "signal": "pdq", "quality": 100},
        {"hash": pdqs[1], "label": " pending ", "source": "report-9", "reviewed": False},
        {"hash": pdqs[2], "label": "no signal field", "source": ""},
    ]
    text = "\n".join(json.dumps(row) for row in rows) + "\n\n"
    assert read(text, "jsonl") == [
        ImportEntry(signal="pdq", hash=parse_hash("pdq", pdqs[0]), label="banked", quality=100),
        ImportEntry(
            signal="pdq",
            hash=parse_hash("pdq", pdqs[1]),
            label="pending",
            source="report-9",
            reviewed=False,
        ),
        ImportEntry(signal="pdq", hash=parse_hash("pdq", pdqs[2]), label="no signal field"),
    ]
    phash_row = json.dumps({"hash": phashes[0], "label": "p", "signal": "phash"})
    assert read(phash_row, "jsonl", signal="phash")[0].hash == parse_hash("phash", phashes[0])


def test_threatexchange_dataset_csv(pdqs):
    # What `threatexchange dataset -P --csv` prints (csv.DictWriter: CRLF line ends).
    text = (
        "signal_type,signal_str,collab,category,tags\r\n"
        f"pdq,{pdqs[0]},Sample Collab,POSITIVE_CLASS,media_type_photo nude\r\n"
        f"PDQ,{pdqs[1]},Sample Collab,INVESTIGATION_SEED,\r\n"
        f"HASH_PDQ,{pdqs[2]},,POSITIVE_CLASS,\r\n"
        f"pdq,{BRIDGE},Sample Collab,NEGATIVE_CLASS,false_positive\r\n"
    )
    entries = read(text, "threatexchange")
    assert [(e.hash.hex(), e.label, e.source, e.reviewed) for e in entries] == [
        (pdqs[0], "media_type_photo nude", "Sample Collab", True),
        (pdqs[1], "Sample Collab", "Sample Collab", False),
        (pdqs[2], "threatexchange line 4", None, True),
    ]


def test_threatexchange_plain_signal_file(pdqs, phashes):
    # file_api.py's lines: "<signal type> <hash>", or a bare hash.
    text = f"pdq {pdqs[0]}\n{pdqs[1]}\n"
    entries = read(text, "threatexchange")
    assert [(e.signal, e.hash.hex(), e.label, e.reviewed) for e in entries] == [
        ("pdq", pdqs[0], "threatexchange line 1", False),
        ("pdq", pdqs[1], "threatexchange line 2", False),
    ]
    assert read(f"phash {phashes[0]}\n", "threatexchange", "phash")[0].signal == "phash"


def test_hma_bank_content(pdqs):
    contents = [
        {
            "id": 1234,
            "disable_until_ts": 1,
            "original_media_uri": None,
            "bank": {"name": "NCII_BANK", "matching_enabled_ratio": 1.0},
            "signals": {"pdq": pdqs[0]},
            "metadata": {
                "content_id": "case-881",
                "content_uri": "https://example.org/case/881",
                "json": {"reporter": "trust-and-safety"},
                "collab": {"STOPNCII": ["pdq", pdqs[0]]},
            },
            "note": "confirmed by review",
        },
        {
            "id": 1235,
            "disable_until_ts": 0,
            "original_media_uri": "s3://bank/1235.jpg",
            "bank": {"name": "NCII_BANK", "matching_enabled_ratio": 1.0},
            "signals": {"pdq": pdqs[1]},
            "metadata": {"content_id": "case-882"},
        },
        {"id": 1236, "disable_until_ts": 1893456000, "signals": {"pdq": pdqs[2]}},
    ]
    text = "".join(json.dumps(content) + "\n" for content in contents)
    entries = read(text, "hma")
    assert [(e.hash.hex(), e.label, e.source, e.reviewed) for e in entries] == [
        (pdqs[0], "confirmed by review", "https://example.org/case/881", True),
        (pdqs[1], "case-882", "s3://bank/1235.jpg", False),
        (pdqs[2], "hma content 1236", None, False),
    ]


def test_stopncii_hash_records():
    # The shape of FetchHashes records (python-threatexchange's StopNCII client test).
    records = [
        {
            "lastModtimestamp": 1625167804,
            "hashValue": NCII[0],
            "hashStatus": "Received",
            "caseNumbers": {"27664732-76e1-4a17-8099-455798e67022": "Received"},
            "signalType": "ImagePDQ",
        },
        {
            "lastModtimestamp": 1625167844,
            "hashValue": NCII[1],
            "hashStatus": "Withdrawn",
            "caseNumbers": {"bd2bff7c-8160-4615-8dce-38c2f066d1ac": "Withdrawn"},
            "signalType": "ImagePDQ",
        },
        {
            "lastModtimestamp": 1625175071,
            "hashValue": NCII[2],
            "hashStatus": "Active",
            "caseNumbers": {"cc592711-7068-442f-b5d2-24d50d389751": "Active"},
            "signalType": "ImagePDQ",
            "CSPFeedbacks": [
                {
                    "source": "Facebook",
                    "feedbackValue": "Blocked",
                    "tags": ["Nude", "Objectionable"],
                },
                {"source": "Other", "feedbackValue": "PendingReview", "tags": ["Nude"]},
            ],
        },
    ]
    text = "".join(json.dumps(record) + "\n" for record in records) + BRIDGE + "\n"
    entries = read(text, "stopncii")
    assert [(e.hash.hex(), e.label, e.source, e.reviewed) for e in entries] == [
        (NCII[0], "stopncii line 1", None, False),
        (NCII[2], "Nude Objectionable", "Facebook", True),
        (BRIDGE, "stopncii line 4", None, False),
    ]


# Round trips.


def export_entries(signal, hexes) -> list[ExportEntry]:
    labels = ["plain", 'comma, "quotes"', "ünïcødé ラベル", "x" * MAX_FIELD_CHARS]
    return [
        ExportEntry(
            signal=signal,
            hash=parse_hash(signal, value),
            label=labels[i % len(labels)],
            source=None if i % 2 else f"source {i}, with comma",
            reviewed=i % 3 != 1,
        )
        for i, value in enumerate(hexes)
    ]


def as_export(entry: ImportEntry) -> ExportEntry:
    return ExportEntry(
        signal=entry.signal,
        hash=entry.hash,
        label=entry.label,
        source=entry.source,
        reviewed=entry.reviewed,
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_pdq(fmt, pdqs):
    entries = export_entries("pdq", [*pdqs, *NCII, BRIDGE])
    written = list(write_entries(entries, fmt))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in written)
    back = list(read_entries(written, fmt, signal="pdq"))
    assert [as_export(entry) for entry in back] == entries
    assert detect_format(None, None, b"".join(written)[:512]) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_written_in_parts_reads_back_whole(fmt, pdqs):
    """Later parts without the header, as an export streams a list a batch at a time."""
    entries = export_entries("pdq", [*pdqs, *NCII, BRIDGE])
    half = len(entries) // 2
    written = [
        *write_entries(entries[:half], fmt),
        *write_entries(entries[half:], fmt, header=False),
    ]
    assert written == list(write_entries(entries, fmt))
    back = list(read_entries(written, fmt, signal="pdq"))
    assert [as_export(entry) for entry in back] == entries


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "stopncii"])
def test_round_trip_phash(fmt, phashes):
    entries = export_entries("phash", phashes)
    back = list(read_entries(write_entries(entries, fmt), fmt, signal="phash"))
    assert [as_export(entry) for entry in back] == entries


def test_stopncii_writes_pdq_only(phashes):
    entries = export_entries("phash", phashes)
    with pytest.raises(HashSignalMismatch) as caught:
        list(write_entries(entries, "stopncii"))
    assert caught.value.code == "hash_signal_mismatch"
    assert caught.value.line == 1


@pytest.mark.parametrize(
    "entry",
    [
        ExportEntry(signal="pdq", hash=b"\x00" * 8, label="short", source=None, reviewed=True),
        ExportEntry(signal="pdq", hash=b"\x00" * 32, label="", source=None, reviewed=True),
        ExportEntry(signal="pdq", hash=b"\x00" * 32, label="a\nb", source=None, reviewed=True),
        ExportEntry(signal="pdq", hash=b"\x00" * 32, label="ok", source=" pad", reviewed=True),
    ],
)
def test_write_refuses_what_would_not_read_back(entry):
    with pytest.raises(HashValueInvalid, match="entry 1"):
        list(write_entries([entry], "jsonl"))


# Bad input.

P = "9def0b7dafa86a1c90f2abd78e79ceb25ec3d1a4b3d4bc7a4354baf7717ea038"


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        # wrong length, non-hex, 0x prefix, a space inside
        ("csv", f"hash,label\n{P[:-1]},x\n", 2),
        ("csv", f"{P[:-1]}g,x\n", 1),
        ("csv", f"0x{P[:-2]},x\n", 1),
        ("csv", f"{P[:30]} {P[31:]},x\n", 1),
        ("jsonl", json.dumps({"hash": P + "00", "label": "x"}), 1),
        ("jsonl", json.dumps({"hash": "0x" + P[2:], "label": "x", "signal": "pdq"}), 1),
        ("threatexchange", f"pdq {P[:-1]}z\n", 1),
        ("threatexchange", f"pdq 0x{P}\n", 1),
        ("hma", json.dumps({"signals": {"pdq": P[:60]}}), 1),
        ("stopncii", json.dumps({"signalType": "ImagePDQ", "hashValue": P.upper()[:-2]}), 1),
        ("stopncii", f"{P}\n{P[:16]}\n", 2),
        # unknown signal names
        ("jsonl", json.dumps({"hash": P, "label": "x", "signal": "md5"}), 1),
        ("threatexchange", f"video_md5 {P}\n", 1),
        (
            "threatexchange",
            f"signal_type,signal_str,collab,category,tags\nurl_md5,{P},c,POSITIVE_CLASS,t\n",
            2,
        ),
        ("hma", json.dumps({"signals": {"video_md5": P}}), 1),
        ("stopncii", json.dumps({"signalType": "VideoMD5", "hashValue": P}), 1),
        # labels and sources
        ("csv", f"{P},{'x' * (MAX_FIELD_CHARS + 1)}\n", 1),
        ("csv", f"{P},   \n", 1),
        ("jsonl", json.dumps({"hash": P, "label": "a\tb"}), 1),
        ("jsonl", json.dumps({"hash": P, "label": "x", "source": "s" * 513}), 1),
        ("hma", json.dumps({"signals": {"pdq": P}, "note": "n" * 513}), 1),
        # structure
        ("csv", "hash,name\n", 1),
        ("csv", f"{P}\n", 1),
        ("csv", f"{P},a,b,true,extra\n", 1),
        ("csv", f"{P},a,b,yes\n", 1),
        ("csv", f'{P},"unterminated\n', 1),
        ("jsonl", json.dumps({"hash": P, "label": "x", "colour": "red"}), 1),
        ("jsonl", '{"hash": "' + P + '", "label": ', 1),
        ("jsonl", json.dumps({"hash": P, "label": "x", "quality": 101}), 1),
        ("jsonl", json.dumps({"hash": P[:16], "label": "x", "quality": 90}), 1),
        ("threatexchange", f"signal_type,signal_str,collab,category,tags\npdq,{P},c,MAYBE,t\n", 2),
        ("threatexchange", f"signal_type,signal_str,collab,category,tags\npdq,{P},c\n", 2),
        ("hma", json.dumps({"signals": {"pdq": P, "phash": P[:16]}}), 1),
        ("hma", json.dumps({"signals": {}}), 1),
        (
            "stopncii",
            json.dumps({"signalType": "ImagePDQ", "hashValue": P, "hashStatus": "Gone"}),
            1,
        ),
        (
            "stopncii",
            json.dumps(
                {
                    "signalType": "ImagePDQ",
                    "hashValue": P,
                    "CSPFeedbacks": [{"feedbackValue": "Meh"}],
                }
            ),
            1,
        ),
    ],
)
def test_bad_lines_are_refused_with_their_line(fmt, text, line):
    error = refused(text, fmt)
    assert type(error) is HashListLineInvalid
    assert error.code == "hash_list_line_invalid"
    assert error.line == line
    assert error.message.startswith(f"line {line}: ")


def test_long_line_and_bad_utf8_are_refused():
    long_label = "x" * MAX_LINE_BYTES
    error = refused([f"{P},ok\n".encode(), f"{P},{long_label}\n".encode()], "csv")
    assert (error.code, error.line) == ("hash_list_line_invalid", 2)
    assert "4096 bytes" in error.message
    # Exactly the limit, its line break not counted, is fine... up to the label's own limit.
    exact = f"{P},{'y' * 400}".ljust(MAX_LINE_BYTES, " ").encode() + b"\r\n"
    assert len(list(read_entries([exact], "csv", signal="pdq"))) == 1
    error = refused([f"{P},caf\xe9\n".encode("latin-1")], "csv")
    assert (error.code, error.line) == ("hash_list_line_invalid", 1)


def test_unknown_format_and_signal_are_refused_at_once():
    with pytest.raises(HashFormatUnknown) as caught:
        read_entries([], "xml", signal="pdq")  # type: ignore[arg-type]
    assert caught.value.code == "hash_format_unknown"
    with pytest.raises(HashFormatUnknown):
        write_entries([], "xml")  # type: ignore[arg-type]
    with pytest.raises(HashValueInvalid):
        read_entries([], "csv", signal="md5")  # type: ignore[arg-type]


# One signal a file, the list's.


def test_mixed_file_is_refused(pdqs, phashes):
    text = f"{pdqs[0]},a\n{pdqs[1]},b\n{phashes[0]},c\n"
    error = refused(text, "csv")
    assert isinstance(error, HashSignalsMixed)
    assert (error.code, error.line) == ("hash_signals_mixed", 3)


def test_mixed_is_told_before_mismatch(pdqs, phashes):
    # The first entry is of the wrong signal, but the file is mixed: that is what it is.
    text = "\n".join(
        [
            json.dumps({"hash": phashes[0], "label": "a", "signal": "phash"}),
            json.dumps({"hash": phashes[1], "label": "b", "signal": "phash"}),
            json.dumps({"hash": pdqs[0], "label": "c", "signal": "pdq"}),
        ]
    )
    error = refused(text, "jsonl", signal="pdq")
    assert (error.code, error.line) == ("hash_signals_mixed", 3)


def test_other_signal_than_the_list_is_a_mismatch(pdqs, phashes):
    text = f"hash,label\n{phashes[0]},a\n{phashes[1]},b\n"
    error = refused(text, "csv", signal="pdq")
    assert isinstance(error, HashSignalMismatch)
    assert (error.code, error.line) == ("hash_signal_mismatch", 2)
    # A bad line after a wrong first entry does not hide why the file cannot be imported.
    error = refused(f"{phashes[0]},a\nnot a hash,b\n", "csv", signal="pdq")
    assert (error.code, error.line) == ("hash_signal_mismatch", 1)
    error = refused(f"pdq {pdqs[0]}\n", "threatexchange", signal="phash")
    assert (error.code, error.line) == ("hash_signal_mismatch", 1)
    error = refused(f"{NCII[0]}\n", "stopncii", signal="phash")
    assert (error.code, error.line) == ("hash_signal_mismatch", 1)


def test_entries_before_a_bad_line_are_yielded():
    entries = read_entries([f"{P},a\n".encode(), b"bad,b\n"], "csv", signal="pdq")
    assert next(entries).label == "a"
    with pytest.raises(HashListLineInvalid) as caught:
        next(entries)
    assert caught.value.line == 2


# Detection.


@pytest.mark.parametrize(
    ("filename", "media_type", "head", "expected"),
    [
        ("hashes.csv", None, b"", "csv"),
        ("exports/LIST.CSV", "application/octet-stream", b"", "csv"),
        ("hashes.jsonl", None, b"", "jsonl"),
        ("hashes.ndjson", None, b"", "jsonl"),
        ("out.csv", None, b"signal_type,signal_str,collab,category,tags\r\npdq,", "threatexchange"),
        ("bank.jsonl", None, b'{"id": 1, "signals": {"pdq": "f8f8', "hma"),
        ("feed.ndjson", None, b'{"lastModtimestamp": 1, "hashValue": "2afc', "stopncii"),
        (None, "text/csv; charset=utf-8", b"", "csv"),
        (None, "application/x-ndjson", b"", "jsonl"),
        (None, "application/jsonl", b'\n{"hash": "ab", "label": "\\"signals\\": x"}', "jsonl"),
        ("upload", "text/plain", b"pdq " + P.encode() + b"\n", "threatexchange"),
        (None, None, b"\xef\xbb\xbfhash,label\n", "csv"),
        (None, None, P.encode() + b"\n" + P.encode(), "stopncii"),
        (None, None, b'{"signalType": "ImagePDQ"', "stopncii"),
        (None, None, b'{"hash": "' + P.encode() + b'"', "jsonl"),
        (None, None, b"signal_type,signal_str,collab,category,tags\n", "threatexchange"),
    ],
)
def test_detect_format(filename, media_type, head, expected):
    assert detect_format(filename, media_type, head) == expected


@pytest.mark.parametrize(
    ("filename", "media_type", "head"),
    [
        (None, None, b""),
        ("notes.txt", "text/plain", b"hello world\n"),
        ("list.json", "application/json", b'[{"hash": "ab", "label": "x"}]'),
        (None, None, b"name,age\nann,3\n"),
        (None, None, b"\n\n   \n"),
    ],
)
def test_undetectable_format_is_unknown(filename, media_type, head):
    with pytest.raises(HashFormatUnknown) as caught:
        detect_format(filename, media_type, head)
    assert caught.value.code == "hash_format_unknown"


# Streaming.


def test_200k_lines_stream_through_a_generator():
    total = 200_000
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        yield b"hash,label,source\n"
        for i in range(total):
            pulled += 1
            yield b"%064x,entry %d,feed\n" % (i * 0x9E3779B97F4A7C15, i)

    started = time.perf_counter()
    entries = read_entries(source(), "csv", signal="pdq")
    assert isinstance(entries, Iterator)
    assert pulled == 0
    first = next(entries)
    assert (first.label, pulled) == ("entry 0", 1)
    count = 1 + sum(1 for _ in entries)
    elapsed = time.perf_counter() - started
    assert (count, pulled) == (total, total)
    # Generous: the point is that it streams, not a benchmark on a shared machine.
    assert elapsed < 10, elapsed


def test_write_streams():
    made = 0

    def entries() -> Iterator[ExportEntry]:
        nonlocal made
        for i in range(1000):
            made += 1
            yield ExportEntry(
                signal="pdq", hash=i.to_bytes(32, "big"), label=f"e{i}", source=None, reviewed=True
            )

    out = write_entries(entries(), "threatexchange")
    assert next(out).startswith(b"signal_type,")
    assert made == 0
    next(out)
    assert made == 1
