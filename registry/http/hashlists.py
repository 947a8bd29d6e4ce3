"""Protected-hash list administration over HTTP (admins of the list's tenant).

A list holds one signal (``pdq`` or ``phash``) and has an action (``review`` or ``block``).
Entries are added as JSON, as an uploaded file in any ``moderation.exchange`` format (ours,
ThreatExchange, HMA, StopNCII), or as an image (its hashes are computed here); a list's
enabled entries export in any of those formats; entries can be disabled. An admin sees and
changes only its tenant's lists: another tenant's list is 404 ``hash_list_not_found``. Every
change is audited (counts only) and bumps the lists' version, so every service process
reloads its index before its next gate decision.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from moderation.errors import HashFormatUnknown, HashValueInvalid
from moderation.exchange import (
    FORMATS,
    MAX_FIELD_CHARS,
    FormatName,
    ImportEntry,
    detect_format,
    read_entries,
)
from moderation.hashlists import (  # noqa: TC001 - msgspec reads them at runtime
    ListAction,
    ListScope,
)
from moderation.signals import SIGNAL_BITS, Signal, parse_hash
from registry.core.auth import Client, Role
from registry.gate import (
    HashListUploadInvalid,
    HashListView,
    ImageAdded,
    ImportResult,
    RequestPartInvalid,
    add_image,
    create_list,
    disable_entries,
    export_file,
    get_list,
    import_entries,
    list_lists,
)
from registry.http.deps import AppServices, read_payload
from registry.http.provenance import read_parts
from registry.http.security import BEARER, allow
from verifier import decode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator

    from PIL import Image

    from verifier import ImageLimits

# No control characters: a line break would split an exported CSV row.
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
_Field = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FIELD_CHARS, pattern=_NO_CONTROL)]
_Distance = Annotated[int, msgspec.Meta(ge=0, le=max(SIGNAL_BITS.values()))]
ListName = FromPath[str]
FormatQuery = Annotated[
    str | None,
    QueryParameter(
        name="format",
        description="One of " + ", ".join(FORMATS) + "; detected from the file when absent.",
    ),
]
ExportFormat = Annotated[
    str, QueryParameter(name="format", description="One of " + ", ".join(FORMATS) + ".")
]

# Bytes of an upload the format is told from (its name and media type first).
_DETECT_BYTES = 4096
# The media type an export is sent as, and its file name's extension, by format.
_MEDIA: dict[str, tuple[str, str]] = {
    # Litestar adds "; charset=utf-8" to text types itself (once).
    "csv": ("text/csv", "csv"),
    "threatexchange": ("text/csv", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
    "hma": ("application/x-ndjson", "jsonl"),
    "stopncii": ("application/x-ndjson", "jsonl"),
}
# The label and source parts of an image upload: a field's characters, UTF-8 at most 4 bytes.
_TEXT_PART_BYTES = 4 * MAX_FIELD_CHARS


class CreateList(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    signal: Signal = "phash"
    """The hashes the list holds: ``pdq`` (256 bits) or ``phash`` (64 bits, the default)."""
    action: ListAction
    """What a close match leads to under the policy's block band: ``review`` or ``block``."""
    scope: ListScope = "global"
    """``global``: matches every tenant's images; ``tenant``: only this tenant's."""
    unreviewed_distance: _Distance | None = None
    """Unreviewed entries match only this close (0..bits of the signal); None: as reviewed."""


class EntryIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    hash: str
    """Hex of the list's signal: 64 characters for ``pdq``, 16 for ``phash``."""
    label: _Field
    source: _Field | None = None
    """Where the entry comes from; on a consent-exempt list, the consent asset id it protects."""
    reviewed: bool = True
    """False for an entry nobody has verified (it may match less far: unreviewed_distance)."""


class AddEntries(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    entries: Annotated[list[EntryIn], msgspec.Meta(min_length=1, max_length=100_000)]


class DisableEntries(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    hashes: Annotated[list[str], msgspec.Meta(min_length=1, max_length=100_000)]
    """Hex of the list's signal."""


class HashListsView(msgspec.Struct, kw_only=True, frozen=True):
    lists: list[HashListView]


class Disabled(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    disabled: int


_UPLOAD_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "A hash-list file: ours (csv `hash,label[,source[,reviewed]]`, or "
            "jsonl), ThreatExchange's dataset CSV or signal file, HMA bank content objects "
            "or StopNCII hash records, one a line. The format is `?format=`, else told from "
            "the file name, media type and first line.",
        }
    },
}
_IMAGE_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["image", "label"],
    "properties": {
        "image": {
            "type": "string",
            "format": "binary",
            "description": "The image to protect (JPEG, PNG or WebP), decoded within the "
            "gate's limits.",
        },
        "label": {
            "type": "string",
            "maxLength": MAX_FIELD_CHARS,
            "pattern": _NO_CONTROL,
            "description": "Shown with matches.",
        },
        "source": {
            "type": "string",
            "maxLength": MAX_FIELD_CHARS,
            "pattern": _NO_CONTROL,
            "description": "Optional: where the image comes from.",
        },
    },
}


def _format(value: str | None) -> FormatName | None:
    if value is None:
        return None
    for name in FORMATS:
        if value == name:
            return name
    raise HashFormatUnknown(
        f"unknown hash-list format {value[:32]!r}; expected one of " + ", ".join(FORMATS)
    )


def _json_entries(entries: Iterable[EntryIn]) -> Iterator[ImportEntry]:
    for line, entry in enumerate(entries, start=1):
        # The signal is told by the hash's length; import_entries refuses the other one.
        signal = next((s for s, bits in SIGNAL_BITS.items() if len(entry.hash) == bits // 4), None)
        if signal is None:
            msg = f"entry {line}: a hash is 64 hex characters (pdq) or 16 (phash)"
            raise HashValueInvalid(msg)
        yield ImportEntry(
            signal=signal,
            hash=parse_hash(signal, entry.hash),
            label=entry.label,
            source=entry.source,
            reviewed=entry.reviewed,
        )


async def _uploaded_file(request: Request[Any, Any, Any]) -> tuple[bytes, str | None, str | None]:
    """The one ``file`` part: its bytes, file name and media type."""
    form = await request.form()
    parts = list(form.multi_items())
    try:
        if [name for name, _ in parts] != ["file"] or not isinstance(parts[0][1], UploadFile):
            raise HashListUploadInvalid("send one file part named 'file'")
        upload = parts[0][1]
        return await upload.read(), upload.filename, upload.content_type
    finally:
        for _, value in parts:
            if isinstance(value, UploadFile):
                await value.close()


def _text_part(parts: dict[str, Any], name: str) -> str | None:
    part = parts.get(name)
    if part is None:
        return None
    try:
        text: str = bytes(part.data).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise RequestPartInvalid(f"the {name!r} part is not UTF-8") from None
    if len(text) > MAX_FIELD_CHARS or not re.fullmatch(_NO_CONTROL, text):
        msg = f"the {name!r} part is 1..{MAX_FIELD_CHARS} characters, no control characters"
        raise RequestPartInvalid(msg)
    return text


def _decoded(data: bytes, limits: ImageLimits, media_type: str | None) -> Image.Image:
    # As the gate decodes (hash_only): the stored hashes come from the pixels it will hash.
    return decode(data, limits, media_type, hash_only=True).image


async def _exported(
    services: AppServices, name: str, tenant: str, fmt: FormatName
) -> AsyncIterator[bytes]:
    """The export's parts, holding a connection while they are read. What the export refuses
    (an unknown list, a format that cannot hold it) raises here, before the response starts."""
    held = contextlib.AsyncExitStack()
    conn = await held.enter_async_context(services.connection())
    try:
        _, parts = await export_file(conn, name, tenant, fmt)
    except BaseException:
        await held.aclose()
        raise

    async def streamed() -> AsyncIterator[bytes]:
        async with held:
            async for part in parts:
                yield part

    return streamed()


class HashListsController(Controller):
    path = "/v1/admin/hash-lists"
    tags = ["hash lists"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.ADMIN)]  # noqa: RUF012 - Litestar reads class attributes
    security = BEARER

    @post(
        "/",
        summary="Create a hash list of one signal (pdq or phash) with an action",
        description=(
            "The list belongs to the caller's tenant. `scope` `global` (the default) matches "
            "every tenant's images, `tenant` only the caller's tenant's. A taken name: 409 "
            "`hash_list_exists`; an `unreviewed_distance` beyond the signal's bits: 422 "
            "`hash_value_invalid`."
        ),
        status_code=201,
        opt={"body": CreateList},
    )
    async def create(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[CreateList],
    ) -> HashListView:
        async with services.unit_of_work(caller) as uow:
            return await create_list(
                uow,
                name=payload.name,
                signal=payload.signal,
                action=payload.action,
                tenant=caller.tenant,
                scope=payload.scope,
                unreviewed_distance=payload.unreviewed_distance,
            )

    @get("/", summary="The tenant's hash lists: signal, action, scope, state, entry count")
    async def index(self, services: AppServices, caller: NamedDependency[Client]) -> HashListsView:
        async with services.connection() as conn:
            return HashListsView(lists=await list_lists(conn, caller.tenant))

    @get("/{name:str}", summary="One hash list of the tenant")
    async def show(
        self, services: AppServices, caller: NamedDependency[Client], name: ListName
    ) -> HashListView:
        async with services.connection() as conn:
            return await get_list(conn, name, caller.tenant)

    @post(
        "/{name:str}/entries",
        summary="Add entries: JSON {entries: [...]} or a hash-list file in any exchange format",
        description=(
            "All or nothing: a bad line refuses the whole upload (422 `hash_list_line_invalid`, "
            "naming the line); a hash of the other signal is 422 `hash_signal_mismatch` (a file "
            "holding both, `hash_signals_mixed`), a hash that is not hex of 16 or 64 "
            "characters `hash_value_invalid`, an unknown `?format=` `hash_format_unknown`. PDQ "
            "entries whose quality (when the file carries it) is below the policy's floor are "
            "not stored and are counted in `low_quality`. A hash already on the list gets the "
            "new label, source and review state and is enabled again. For millions of "
            "entries use `registry hashes import`."
        ),
        status_code=200,
        opt={"body": AddEntries, "multipart": _UPLOAD_PARTS},
    )
    async def add_entries(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
        name: ListName,
        fmt: FormatQuery = None,
    ) -> ImportResult:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        chosen = _format(fmt)
        floor = services.gate.policy.hashes.pdq.quality_floor
        if media == "multipart/form-data":
            data, filename, content_type = await _uploaded_file(request)
            if chosen is None:
                chosen = detect_format(filename, content_type, data[:_DETECT_BYTES])
            async with services.unit_of_work(caller) as uow:
                target = await get_list(uow.conn, name, caller.tenant)
                lines = data.splitlines(keepends=True)
                entries = read_entries(lines, chosen, signal=target.signal)
                return await import_entries(
                    uow, list_name=name, entries=entries, quality_floor=floor
                )
        body: AddEntries = await read_payload(request, services)
        async with services.unit_of_work(caller) as uow:
            return await import_entries(
                uow, list_name=name, entries=_json_entries(body.entries), quality_floor=floor
            )

    @post(
        "/{name:str}/images",
        summary="Add an image: its hashes (and on a pHash list its crops') become entries",
        description=(
            "Multipart: `image`, `label` and optionally `source`. The image is decoded with "
            "the gate's decoder and limits (an image that does not decode or is too large is "
            "the verifier's image problem, nothing stored). A pHash list stores the image's "
            "pHash and the pHashes of a grid of its crops (5 to 30 % off each side, and "
            "centred), so a cropped copy still matches; a PDQ list stores its PDQ (refused "
            "with 422 `hash_value_invalid` when its quality is below the policy's floor). "
            "An image with a border of its own (near-uniform edges) also keeps the hash of "
            "itself without it (crop `without border`), on either signal."
        ),
        status_code=201,
        opt={"multipart": _IMAGE_PARTS},
    )
    async def add_image(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
        name: ListName,
    ) -> ImageAdded:
        caps = {
            "image": services.settings.max_image_bytes,
            "label": _TEXT_PART_BYTES,
            "source": _TEXT_PART_BYTES,
        }
        parts = await read_parts(request, caps, ("image", "label"))
        image_part = parts["image"]
        label = _text_part(parts, "label") or ""
        source = _text_part(parts, "source")
        # In the image workers the gate decodes in, bounded in threads and in time.
        image = await services.provenance.work.run(
            _decoded,
            bytes(image_part.data),
            services.gate.settings.image_limits,
            image_part.content_type,
        )
        async with services.unit_of_work(caller) as uow:
            return await add_image(
                uow,
                list_name=name,
                image=image,
                label=label,
                source=source,
                quality_floor=services.gate.policy.hashes.pdq.quality_floor,
            )

    @get(
        "/{name:str}/export",
        summary="The list's enabled entries as a file of any exchange format (csv default)",
        description=(
            "Streamed; `?format=` is one of csv, jsonl, threatexchange, hma, stopncii (PDQ "
            "lists only). What is exported imports back to the same entries."
        ),
        # Documents the file; the media type sent is the format's own (_MEDIA).
        responses={
            200: ResponseSpec(
                data_container=bytes,
                generate_examples=False,
                media_type="text/csv",
                description="The file: text/csv for csv and threatexchange, "
                "application/x-ndjson for jsonl, hma and stopncii; attachment, named "
                "`<list>.<format>.<csv|jsonl>`.",
            )
        },
        opt={"also_produces": {200: ("application/x-ndjson",)}},
    )
    async def export(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        name: ListName,
        fmt: ExportFormat = "csv",
    ) -> Stream:
        chosen = _format(fmt) or "csv"
        media_type, extension = _MEDIA[chosen]
        return Stream(
            await _exported(services, name, caller.tenant, chosen),
            media_type=media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{name}.{chosen}.{extension}"',
                "Cache-Control": "no-store",
            },
        )

    @post(
        "/{name:str}/entries/disable",
        summary="Disable entries of a list by hash (they stop matching; history stays)",
        description="Hashes are hex of the list's signal (else 422 `hash_value_invalid`).",
        status_code=200,
        opt={"body": DisableEntries},
    )
    async def disable(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[DisableEntries],
        name: ListName,
    ) -> Disabled:
        async with services.unit_of_work(caller) as uow:
            count = await disable_entries(uow, list_name=name, hashes=payload.hashes)
        return Disabled(list=name, disabled=count)
