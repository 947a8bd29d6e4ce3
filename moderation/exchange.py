"""Hash-list files in and out: our own CSV and JSON lines, and the shapes the exchanges use.

Every format is read line by line from bytes (``read_entries``, a generator: a million-line
file is never held as a million objects) and written line by line (``write_entries``); what
is written reads back to the same entries. A line is at most ``MAX_LINE_BYTES`` bytes (its
line break not counted), UTF-8, and blank lines are skipped. A label is stripped and 1 to
``MAX_FIELD_CHARS`` characters, a source too or absent (an empty one is absent); neither may
hold a control character. Hashes are hex of exactly their signal's length (64 characters for
``pdq``, 16 for ``phash``, either case): no ``0x``, no spaces. A format without a signal field
is told the signal by the hash's length. Every entry of a file is of one signal
(hash_signals_mixed), and of the list's (hash_signal_mismatch).

The formats:

``csv`` (ours)
    ``hash,label[,source[,reviewed]]``, optionally after a header naming those columns.
    ``reviewed`` is ``true`` or ``false`` (empty or absent: true). Written with the header.
``jsonl`` (ours)
    one object a line: ``hash``, ``label``, and optionally ``source``, ``signal`` (``pdq`` or
    ``phash``), ``reviewed`` (a boolean, default true) and ``quality`` (PDQ's, 0-100); no other
    field.
``threatexchange``
    python-threatexchange's ``threatexchange dataset -P --csv`` output (facebook/ThreatExchange,
    ``python-threatexchange/threatexchange/cli/dataset_cmd.py``): the header
    ``signal_type,signal_str,collab,category,tags``, then one row a signal. ``signal_str`` is the
    hash, ``tags`` (space-separated) the label (else the collaboration's name), ``collab`` the
    source. ``category`` is the exchange's aggregate opinion (``SignalOpinionCategory``):
    ``POSITIVE_CLASS`` is reviewed, ``INVESTIGATION_SEED`` ("requires verifying") is not, and a
    ``NEGATIVE_CLASS`` row (a known false positive, or test data) is skipped: it is the
    exchange saying the hash is not abusive. Without that header, the file is the library's
    plain signal file (``exchanges/impl/file_api.py``, and ``threatexchange hash`` output): a
    line is ``<signal type> <hash>`` or a bare hash, with no label (``threatexchange line <n>``)
    and unreviewed (the library gives such signals its trivial opinion, INVESTIGATION_SEED).
    Signal types: ``pdq`` (the library's name), ``HASH_PDQ`` (ThreatExchange's indicator
    type), any case; ThreatExchange defines no pHash type, so ``phash`` is ours. Another type
    (``video_md5``, ``url_md5``...) is refused: export with ``-S pdq``. Written as the dataset
    CSV.
``hma``
    one Hasher-Matcher-Actioner bank content object a line, as ``GET
    /c/bank/<bank>/content/<id>`` returns it (``hasher-matcher-actioner/.../blueprints/
    curation.py``, ``schemas/curation.py``): ``signals`` maps a signal type to its hash and
    must hold exactly one; the label is ``note`` (HMA caps it at 255 characters), else
    ``metadata.content_id``, else ``hma content <id>``; the source is
    ``metadata.content_uri``, else ``original_media_uri``. ``disable_until_ts`` is 1 for
    enabled content (HMA's ``BankContentConfig.ENABLED``); disabled content (0, or disabled
    until a time) is not reviewed. Other fields (``bank``, ``id``, ``metadata.json``,
    ``metadata.collab``) are read past. HMA has no bulk export: this is its record shape.
``stopncii``
    one StopNCII.org hash record a line, as its ``FetchHashes`` API returns them
    (``python-threatexchange/threatexchange/exchanges/clients/stopncii/api.py``):
    ``signalType`` must be ``ImagePDQ`` (StopNCII's other types are video and text), the
    hash is ``hashValue``; records whose ``hashStatus`` is ``Withdrawn`` or ``Deleted`` are
    skipped (the API's instruction is that clients delete them). StopNCII hashes are
    submitted by the people pictured and carry no label: the label is the platforms'
    ``CSPFeedbacks`` tags, else ``stopncii line <n>``; the source the first feedback's
    ``source`` (the platform). An entry is reviewed when a platform's feedback is
    ``Blocked`` (a match was reviewed and found to be NCII); otherwise it is unreviewed, as
    the library treats every StopNCII record (INVESTIGATION_SEED). A line may also be a bare
    PDQ hash, unreviewed. Written as records without timestamps or case numbers.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Annotated, Final, Literal, NoReturn, TypeAlias, TypeVar

import msgspec

from moderation.errors import (
    HashFormatUnknown,
    HashListLineInvalid,
    HashSignalMismatch,
    HashSignalsMixed,
    HashValueInvalid,
)
from moderation.signals import SIGNAL_BITS, SIGNALS, Signal, format_hash, parse_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "FORMATS",
    "MAX_FIELD_CHARS",
    "MAX_LINE_BYTES",
    "ExportEntry",
    "FormatName",
    "ImportEntry",
    "detect_format",
    "read_entries",
    "write_entries",
]

FormatName: TypeAlias = Literal["csv", "jsonl", "threatexchange", "hma", "stopncii"]
FORMATS: Final[tuple[FormatName, ...]] = ("csv", "jsonl", "threatexchange", "hma", "stopncii")
MAX_LINE_BYTES: Final = 4096
MAX_FIELD_CHARS: Final = 512

_BOM: Final = b"\xef\xbb\xbf"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SIGNAL_OF_LENGTH: Final[dict[int, Signal]] = {bits // 4: s for s, bits in SIGNAL_BITS.items()}
# The names the exchanges give our signals, lower-cased.
_SIGNAL_NAMES: Final[dict[str, Signal]] = {"pdq": "pdq", "hash_pdq": "pdq", "phash": "phash"}
_CSV_COLUMNS: Final = ("hash", "label", "source", "reviewed")
_TE_COLUMNS: Final = ("signal_type", "signal_str", "collab", "category", "tags")
_TE_REVIEWED: Final = {"POSITIVE_CLASS": True, "INVESTIGATION_SEED": False}
_TE_NEGATIVE: Final = "NEGATIVE_CLASS"
_TE_PLAIN: Final = re.compile(r"[A-Za-z_]+ [0-9A-Fa-f]+")
# BankContentConfig.ENABLED and DISABLED (python-threatexchange storage/interfaces.py); any
# other value is the time until which the content is disabled.
_HMA_ENABLED: Final = 1
_HMA_DISABLED: Final = 0
_STOPNCII_PDQ: Final = "ImagePDQ"
# StopNCIICaseStatus and StopNCIICSPFeedbackValue (exchanges/clients/stopncii/api.py).
_STOPNCII_STATUSES: Final = frozenset({"Unknown", "Received", "Active", "Withdrawn", "Deleted"})
_STOPNCII_GONE: Final = frozenset({"Withdrawn", "Deleted"})
_STOPNCII_BLOCKED: Final = "Blocked"
_STOPNCII_FEEDBACK: Final = frozenset(
    {
        "Unknown",
        "None",
        "QualityUnknown",
        "PendingReview",
        "Blocked",
        "NotBlocked",
        "Withdrawn",
        "Deleted",
    }
)
_EXTENSIONS: Final[dict[str, FormatName]] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_MEDIA_TYPES: Final[dict[str, FormatName]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
}
_JSON_KEY: Final = r'[{{,]\s*"{}"\s*:'
_T = TypeVar("_T")


class ImportEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry read from a file: ``hash`` is ``parse_hash(signal, hex)``.

    ``reviewed`` is False when the file marks the entry unverified (see the module's formats);
    ``quality`` is PDQ's when the file carries it.
    """

    signal: Signal
    hash: bytes
    label: str
    source: str | None = None
    reviewed: bool = True
    quality: int | None = None


class ExportEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry to write."""

    signal: Signal
    hash: bytes
    label: str
    source: str | None
    reviewed: bool


class _JsonEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hash: str
    label: str
    source: str | None = None
    signal: Signal | None = None
    reviewed: bool = True
    quality: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None


class _HmaMetadata(msgspec.Struct, frozen=True):
    content_id: str | None = None
    content_uri: str | None = None


class _HmaContent(msgspec.Struct, frozen=True):
    signals: dict[str, str]
    id: int | None = None
    disable_until_ts: int = _HMA_ENABLED
    original_media_uri: str | None = None
    metadata: _HmaMetadata | None = None
    note: str | None = None


class _StopNCIIFeedback(msgspec.Struct, frozen=True):
    feedback_value: str = msgspec.field(name="feedbackValue")
    tags: list[str] = msgspec.field(default_factory=list)
    source: str = ""


class _StopNCIIRecord(msgspec.Struct, frozen=True):
    signal_type: str = msgspec.field(name="signalType")
    hash_value: str = msgspec.field(name="hashValue")
    hash_status: str = msgspec.field(name="hashStatus", default="Received")
    feedbacks: list[_StopNCIIFeedback] = msgspec.field(name="CSPFeedbacks", default_factory=list)


_Numbered: TypeAlias = "Iterator[tuple[int, str]]"
_Found: TypeAlias = "Iterator[tuple[int, ImportEntry]]"


def detect_format(filename: str | None, media_type: str | None, head: bytes) -> FormatName:
    """The format of a file from its name, else its media type, else its first bytes.

    The name or media type tells CSV from JSON lines; the first line (``head`` need hold no
    more than it) then tells ours from an exchange's: ThreatExchange's header in a CSV file,
    StopNCII's or HMA's fields in a JSON one. Raises hash_format_unknown.
    """
    family = _family(filename, media_type)
    first = _first_line(head)
    if family == "csv":
        return "threatexchange" if _is_te_header(first) else "csv"
    if family == "jsonl" or first.startswith("{"):
        return _json_format(first)
    if _is_te_header(first) or _TE_PLAIN.fullmatch(first):
        return "threatexchange"
    if len(first) == SIGNAL_BITS["pdq"] // 4 and re.fullmatch(r"[0-9A-Fa-f]+", first):
        return "stopncii"
    if _is_csv_start(first):
        return "csv"
    raise HashFormatUnknown("cannot tell the hash-list format; name it: " + ", ".join(FORMATS))


def read_entries(
    lines: Iterable[bytes], fmt: FormatName, *, signal: Signal
) -> Iterator[ImportEntry]:
    """The entries of a file of ``fmt``, one line at a time, for a list of ``signal``.

    Raises, naming the 1-based line, hash_list_line_invalid for a line that does not parse,
    hash_signals_mixed when the file holds entries of two signals, and hash_signal_mismatch
    when its entries are of another signal than ``signal``. The first two are checked first:
    a file whose first entry is of the wrong signal is read on, to its end at worst, to tell
    a mixed file from a wrong one. An unknown ``fmt`` raises hash_format_unknown at once.
    """
    parse = _PARSERS.get(fmt)
    if parse is None:
        raise HashFormatUnknown(f"unknown hash-list format {str(fmt)[:32]!r}")
    if signal not in SIGNALS:
        raise HashValueInvalid(f"unknown signal {str(signal)[:32]!r}; expected pdq or phash")
    return _one_signal(parse(_numbered(lines)), signal)


def write_entries(
    entries: Iterable[ExportEntry], fmt: FormatName, *, header: bool = True
) -> Iterator[bytes]:
    """``entries`` as lines of ``fmt`` (each ending in a line break), its header first
    unless ``header`` is False (a later part of a file written in parts).

    Raises hash_value_invalid for an entry ``read_entries`` would refuse (a hash of the
    wrong length, a bad label), and hash_signal_mismatch for a pHash written as StopNCII's.
    """
    write = _WRITERS.get(fmt)
    if write is None:
        raise HashFormatUnknown(f"unknown hash-list format {str(fmt)[:32]!r}")
    lines = write(_checked(entries))
    if not header and fmt in _HEADED:
        next(lines)
    return lines


# Reading.


def _numbered(lines: Iterable[bytes]) -> _Numbered:
    for number, raw in enumerate(lines, start=1):
        body = raw.rstrip(b"\r\n")
        if len(body) > MAX_LINE_BYTES:
            raise HashListLineInvalid(f"longer than {MAX_LINE_BYTES} bytes", line=number)
        if number == 1 and body.startswith(_BOM):
            body = body[len(_BOM) :]
        if not body.strip():
            continue
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HashListLineInvalid("not UTF-8", line=number) from None
        yield number, text


def _one_signal(found: _Found, signal: Signal) -> Iterator[ImportEntry]:
    first: Signal | None = None
    for line, entry in found:
        if first is None:
            first = entry.signal
        elif entry.signal != first:
            _raise_mixed(entry.signal, first, line)
        if entry.signal != signal:
            _raise_mismatch(found, entry.signal, signal, line)
        yield entry


def _raise_mixed(signal: Signal, first: Signal, line: int) -> NoReturn:
    raise HashSignalsMixed(f"a {signal} hash in a file of {first} hashes", line=line)


def _raise_mismatch(rest: _Found, signal: Signal, wanted: Signal, line: int) -> NoReturn:
    mismatch = HashSignalMismatch(f"a {signal} hash; this list holds {wanted} hashes", line=line)
    try:
        for other_line, other in rest:
            if other.signal != signal:
                _raise_mixed(other.signal, signal, other_line)
    except HashListLineInvalid:
        # The first entry already settles that the file cannot be imported; a later bad
        # line would only hide why.
        raise mismatch from None
    raise mismatch


def _read_csv(numbered: _Numbered) -> _Found:
    first = True
    for line, text in numbered:
        row = _csv_row(text, line)
        if first:
            first = False
            if row[0].strip().lower() == _CSV_COLUMNS[0]:
                names = tuple(name.strip().lower() for name in row)
                if len(names) < 2 or names != _CSV_COLUMNS[: len(names)]:  # noqa: PLR2004
                    raise HashListLineInvalid(
                        "header must be hash,label[,source[,reviewed]]", line=line
                    )
                continue
        if not 2 <= len(row) <= len(_CSV_COLUMNS):  # noqa: PLR2004
            raise HashListLineInvalid("expected hash,label[,source[,reviewed]]", line=line)
        signal, value = _sized_hash(row[0].strip(), line)
        padded = [*row, "", ""]
        yield (
            line,
            ImportEntry(
                signal=signal,
                hash=value,
                label=_label(row[1], line),
                source=_source(padded[2], line),
                reviewed=_flag(padded[3], line),
            ),
        )


def _read_jsonl(numbered: _Numbered) -> _Found:
    decoder = msgspec.json.Decoder(_JsonEntry)
    for line, text in numbered:
        item = _decoded(decoder, text, line)
        if item.signal is None:
            signal, value = _sized_hash(item.hash, line)
        else:
            signal, value = item.signal, _hash(item.signal, item.hash, line)
        if item.quality is not None and signal != "pdq":
            raise HashListLineInvalid("quality is PDQ's; a phash entry has none", line=line)
        yield (
            line,
            ImportEntry(
                signal=signal,
                hash=value,
                label=_label(item.label, line),
                source=_source(item.source, line),
                reviewed=item.reviewed,
                quality=item.quality,
            ),
        )


def _read_threatexchange(numbered: _Numbered) -> _Found:
    dataset: bool | None = None
    for line, text in numbered:
        if dataset is None:
            dataset = _is_te_header(text)
            if dataset:
                continue
        entry = _te_row(text, line) if dataset else _te_plain(text, line)
        if entry is not None:
            yield line, entry


def _te_row(text: str, line: int) -> ImportEntry | None:
    row = _csv_row(text, line)
    if len(row) != len(_TE_COLUMNS):
        raise HashListLineInvalid("expected " + ",".join(_TE_COLUMNS), line=line)
    signal_type, signal_str, collab, category, tags = (field.strip() for field in row)
    if category == _TE_NEGATIVE:
        return None
    reviewed = _TE_REVIEWED.get(category)
    if reviewed is None:
        raise HashListLineInvalid(f"unknown category {category[:32]!r}", line=line)
    signal = _signal_named(signal_type, line)
    return ImportEntry(
        signal=signal,
        hash=_hash(signal, signal_str, line),
        label=_label(tags or collab or f"threatexchange line {line}", line),
        source=_source(collab, line),
        reviewed=reviewed,
    )


def _te_plain(text: str, line: int) -> ImportEntry:
    # The library splits at the first space (file_api.py); a bare hash is of the type its
    # collaboration is configured with, which here only its length can tell.
    name, _, value = text.strip().partition(" ")
    if value:
        signal = _signal_named(name, line)
        hashed = _hash(signal, value, line)
    else:
        signal, hashed = _sized_hash(name, line)
    return ImportEntry(
        signal=signal, hash=hashed, label=f"threatexchange line {line}", reviewed=False
    )


def _read_hma(numbered: _Numbered) -> _Found:
    decoder = msgspec.json.Decoder(_HmaContent)
    for line, text in numbered:
        item = _decoded(decoder, text, line)
        if len(item.signals) != 1:
            raise HashListLineInvalid("signals must hold exactly one signal type", line=line)
        [(name, value)] = item.signals.items()
        signal = _signal_named(name, line)
        meta = item.metadata or _HmaMetadata()
        content = f"hma content {item.id}" if item.id is not None else f"hma line {line}"
        yield (
            line,
            ImportEntry(
                signal=signal,
                hash=_hash(signal, value, line),
                label=_label(item.note or meta.content_id or content, line),
                source=_source(meta.content_uri or item.original_media_uri, line),
                reviewed=item.disable_until_ts == _HMA_ENABLED,
            ),
        )


def _read_stopncii(numbered: _Numbered) -> _Found:
    decoder = msgspec.json.Decoder(_StopNCIIRecord)
    for line, text in numbered:
        if not text.lstrip().startswith("{"):
            hashed = _hash("pdq", text.strip(), line)
            yield (
                line,
                ImportEntry(
                    signal="pdq", hash=hashed, label=f"stopncii line {line}", reviewed=False
                ),
            )
            continue
        record = _decoded(decoder, text, line)
        if record.signal_type != _STOPNCII_PDQ:
            raise HashListLineInvalid(
                f"StopNCII signal type {record.signal_type[:32]!r}; only ImagePDQ is held",
                line=line,
            )
        if record.hash_status not in _STOPNCII_STATUSES:
            raise HashListLineInvalid(f"unknown hashStatus {record.hash_status[:32]!r}", line=line)
        if record.hash_status in _STOPNCII_GONE:
            continue
        tags: dict[str, None] = {}
        sources = []
        for feedback in record.feedbacks:
            if feedback.feedback_value not in _STOPNCII_FEEDBACK:
                value = feedback.feedback_value[:32]
                raise HashListLineInvalid(f"unknown feedbackValue {value!r}", line=line)
            tags.update(dict.fromkeys(tag.strip() for tag in feedback.tags if tag.strip()))
            if feedback.source.strip():
                sources.append(feedback.source)
        yield (
            line,
            ImportEntry(
                signal="pdq",
                hash=_hash("pdq", record.hash_value, line),
                label=_label(" ".join(tags) or f"stopncii line {line}", line),
                source=_source(sources[0] if sources else None, line),
                reviewed=any(f.feedback_value == _STOPNCII_BLOCKED for f in record.feedbacks),
            ),
        )


def _csv_row(text: str, line: int) -> list[str]:
    if '"' not in text:
        # Without quotes CSV is the commas alone: a split is the same row, ten times cheaper
        # (most list files have no quoted field).
        return text.split(",")
    try:
        # strict: an unterminated quote is an error, not a field running to the line's end.
        return next(csv.reader((text,), strict=True))
    except csv.Error as exc:
        raise HashListLineInvalid(f"not CSV: {exc}", line=line) from None


def _decoded(decoder: msgspec.json.Decoder[_T], text: str, line: int) -> _T:
    try:
        return decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise HashListLineInvalid(str(exc), line=line) from None


def _hash(signal: Signal, value: str, line: int) -> bytes:
    try:
        return parse_hash(signal, value)
    except HashValueInvalid as exc:
        raise HashListLineInvalid(exc.message, line=line) from None


def _sized_hash(value: str, line: int) -> tuple[Signal, bytes]:
    signal = _SIGNAL_OF_LENGTH.get(len(value))
    if signal is None:
        raise HashListLineInvalid("a hash is 64 hex characters (pdq) or 16 (phash)", line=line)
    return signal, _hash(signal, value, line)


def _signal_named(name: str, line: int) -> Signal:
    signal = _SIGNAL_NAMES.get(name.strip().lower())
    if signal is None:
        raise HashListLineInvalid(
            f"unknown signal type {name.strip()[:32]!r}; expected pdq or phash", line=line
        )
    return signal


def _label(value: str, line: int) -> str:
    text = value.strip()
    if _bad_field(text):
        raise HashListLineInvalid(_field_rule("label"), line=line)
    return text


def _source(value: str | None, line: int) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if _bad_field(text):
        raise HashListLineInvalid(_field_rule("source"), line=line)
    return text


def _bad_field(text: str) -> bool:
    # A line break would split a CSV row in two; other control characters have no business
    # in a label shown to reviewers.
    return not text or len(text) > MAX_FIELD_CHARS or _CONTROL.search(text) is not None


def _field_rule(name: str) -> str:
    return f"{name} must be 1..{MAX_FIELD_CHARS} characters, no control characters"


def _flag(value: str, line: int) -> bool:
    text = value.strip().lower()
    if text in {"", "true"}:
        return True
    if text == "false":
        return False
    raise HashListLineInvalid("reviewed must be true or false", line=line)


# Detection.


def _family(filename: str | None, media_type: str | None) -> FormatName | None:
    if filename:
        name = filename.rsplit("/", 1)[-1].lower()
        dot = name.rfind(".")
        if dot > 0 and name[dot:] in _EXTENSIONS:
            return _EXTENSIONS[name[dot:]]
    if media_type:
        return _MEDIA_TYPES.get(media_type.split(";", 1)[0].strip().lower())
    return None


def _first_line(head: bytes) -> str:
    body = head.removeprefix(_BOM)
    for raw in body.splitlines():
        if raw.strip():
            return raw.strip().decode("utf-8", errors="replace")
    return ""


def _is_csv_start(text: str) -> bool:
    # Our header, or a row that starts with a hash: a comma alone is in too many files.
    start = text.split(",", 1)
    head = start[0].strip()
    if len(start) == 1:
        return False
    if head.lower() == _CSV_COLUMNS[0]:
        return True
    return len(head) in _SIGNAL_OF_LENGTH and re.fullmatch(r"[0-9A-Fa-f]+", head) is not None


def _is_te_header(text: str) -> bool:
    return tuple(name.strip() for name in text.split(",")) == _TE_COLUMNS


def _json_format(first: str) -> FormatName:
    # The first line may be cut short by the end of ``head``: look for top-level keys rather
    # than decode it.
    if re.search(_JSON_KEY.format("signalType"), first) or re.search(
        _JSON_KEY.format("hashValue"), first
    ):
        return "stopncii"
    if re.search(_JSON_KEY.format("signals"), first):
        return "hma"
    return "jsonl"


# Writing.


def _checked(entries: Iterable[ExportEntry]) -> Iterator[tuple[int, ExportEntry]]:
    for number, entry in enumerate(entries, start=1):
        bits = SIGNAL_BITS.get(entry.signal)
        if bits is None or len(entry.hash) * 8 != bits:
            raise HashValueInvalid(f"entry {number}: not a {entry.signal} hash")
        if entry.label != entry.label.strip() or _bad_field(entry.label):
            raise HashValueInvalid(f"entry {number}: {_field_rule('label')}")
        source = entry.source
        if source is not None and (source != source.strip() or _bad_field(source)):
            raise HashValueInvalid(f"entry {number}: {_field_rule('source')}")
        yield number, entry


def _write_csv(entries: Iterator[tuple[int, ExportEntry]]) -> Iterator[bytes]:
    line = _CsvLine()
    yield line(_CSV_COLUMNS)
    for _, entry in entries:
        reviewed = "true" if entry.reviewed else "false"
        yield line((format_hash(entry.hash), entry.label, entry.source or "", reviewed))


def _write_jsonl(entries: Iterator[tuple[int, ExportEntry]]) -> Iterator[bytes]:
    for _, entry in entries:
        item: dict[str, object] = {
            "signal": entry.signal,
            "hash": format_hash(entry.hash),
            "label": entry.label,
        }
        if entry.source is not None:
            item["source"] = entry.source
        item["reviewed"] = entry.reviewed
        yield msgspec.json.encode(item) + b"\n"


def _write_threatexchange(entries: Iterator[tuple[int, ExportEntry]]) -> Iterator[bytes]:
    line = _CsvLine()
    yield line(_TE_COLUMNS)
    for _, entry in entries:
        category = "POSITIVE_CLASS" if entry.reviewed else "INVESTIGATION_SEED"
        hashed = format_hash(entry.hash)
        yield line((entry.signal, hashed, entry.source or "", category, entry.label))


def _write_hma(entries: Iterator[tuple[int, ExportEntry]]) -> Iterator[bytes]:
    for _, entry in entries:
        item: dict[str, object] = {
            "signals": {entry.signal: format_hash(entry.hash)},
            "disable_until_ts": _HMA_ENABLED if entry.reviewed else _HMA_DISABLED,
            "note": entry.label,
        }
        if entry.source is not None:
            item["metadata"] = {"content_uri": entry.source}
        yield msgspec.json.encode(item) + b"\n"


def _write_stopncii(entries: Iterator[tuple[int, ExportEntry]]) -> Iterator[bytes]:
    for number, entry in entries:
        if entry.signal != "pdq":
            raise HashSignalMismatch("StopNCII exchanges PDQ hashes only", line=number)
        feedback = {
            "source": entry.source or "",
            # "None" tags a hash without a verdict; "Blocked" is a reviewed match.
            "feedbackValue": _STOPNCII_BLOCKED if entry.reviewed else "None",
            "tags": [entry.label],
        }
        record = {
            "signalType": _STOPNCII_PDQ,
            "hashValue": format_hash(entry.hash),
            "hashStatus": "Active",
            "CSPFeedbacks": [feedback],
        }
        yield msgspec.json.encode(record) + b"\n"


class _CsvLine:
    """One CSV row at a time as bytes, through one reused buffer."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def __call__(self, row: Iterable[str]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(row)
        return self._buffer.getvalue().encode("utf-8")


_PARSERS: Final[dict[str, Callable[[_Numbered], _Found]]] = {
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "threatexchange": _read_threatexchange,
    "hma": _read_hma,
    "stopncii": _read_stopncii,
}
_WRITERS: Final[dict[str, Callable[[Iterator[tuple[int, ExportEntry]]], Iterator[bytes]]]] = {
    "csv": _write_csv,
    "jsonl": _write_jsonl,
    "threatexchange": _write_threatexchange,
    "hma": _write_hma,
    "stopncii": _write_stopncii,
}
# The formats whose files open with a header line.
_HEADED: Final[frozenset[FormatName]] = frozenset({"csv", "threatexchange"})
