"""Perceptual-hash list administration over HTTP (admins).

Lists are created with an action (``review`` or ``block``); entries are added as JSON or as
an uploaded CSV / JSON-lines file (the same formats as ``registry hashes import``) and can be
disabled. Every change is audited (counts only) and bumps the lists' version, so every
service process reloads its index before its next gate decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath

from moderation import EntryInput, iter_csv, iter_jsonl
from moderation.hashlists import ListAction  # noqa: TC001 - msgspec reads it at runtime
from registry import operations
from registry.core.auth import Client, Role
from registry.gate import (
    HashListUploadInvalid,
    HashListView,
    ImportResult,
    disable_entries,
    import_entries,
    list_lists,
)
from registry.http.deps import AppServices, read_payload
from registry.http.security import BEARER, allow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from registry.core.auth import Client

_Hash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{16}$")]
_Field = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
ListName = FromPath[str]


class CreateList(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    action: ListAction
    """What a close match leads to under the policy's block band: ``review`` or ``block``."""


class EntryIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    hash: _Hash
    """The 64-bit pHash as 16 hex characters."""
    label: _Field
    source: _Field | None = None
    """Where the entry comes from; on a consent-exempt list, the consent asset id it protects."""


class AddEntries(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    entries: Annotated[list[EntryIn], msgspec.Meta(min_length=1, max_length=100_000)]


class DisableEntries(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    hashes: Annotated[list[_Hash], msgspec.Meta(min_length=1, max_length=100_000)]


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
            "description": "CSV lines `hash,label[,source]` (optional header), or JSON lines "
            '`{"hash": "...", "label": "...", "source": "..."}`; the format is taken from the '
            "file name (.csv, .jsonl, .ndjson) or, failing that, from the first line.",
        }
    },
}


async def _uploaded_entries(request: Request[Any, Any, Any]) -> Iterator[EntryInput]:
    form = await request.form()
    parts = list(form.multi_items())
    try:
        if [name for name, _ in parts] != ["file"] or not isinstance(parts[0][1], UploadFile):
            raise HashListUploadInvalid("send one file part named 'file'")
        upload = parts[0][1]
        data = await upload.read()
        name = (upload.filename or "").lower()
        media = (upload.content_type or "").split(";", 1)[0].strip().lower()
    finally:
        for _, value in parts:
            if isinstance(value, UploadFile):
                await value.close()
    lines = data.splitlines(keepends=True)
    jsonl = name.endswith((".jsonl", ".ndjson")) or media in {
        "application/jsonl",
        "application/x-ndjson",
        "application/x-jsonlines",
    }
    if not jsonl and not name.endswith(".csv") and media != "text/csv":
        jsonl = data.lstrip().startswith(b"{")
    if jsonl:
        return iter_jsonl(lines)
    try:
        text = [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError:
        raise HashListUploadInvalid("the CSV file is not UTF-8") from None
    return iter_csv(text)


class HashListsController(Controller):
    path = "/v1/admin/hash-lists"
    tags = ["hash lists"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.ADMIN)]  # noqa: RUF012 - Litestar reads class attributes
    security = BEARER

    @post(
        "/",
        summary="Create a named hash list with an action (review or block)",
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
            return await operations.create_hash_list(uow, name=payload.name, action=payload.action)

    @get("/", summary="Every hash list with its action, state and enabled entry count")
    async def index(self, services: AppServices) -> HashListsView:
        async with services.connection() as conn:
            return HashListsView(lists=await list_lists(conn))

    @post(
        "/{name:str}/entries",
        summary="Add entries: JSON {entries: [{hash, label, source?}]} or a CSV / JSON-lines file",
        description=(
            "All or nothing: a bad line refuses the whole upload (422 `hash_list_line_invalid`, "
            "naming the line). A hash already on the list gets the new label and source and is "
            "enabled again. Every service process matches against the new entries from its "
            "next gate decision on. For millions of entries use `registry hashes import`."
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
    ) -> ImportResult:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        entries: Iterator[EntryInput]
        if media == "multipart/form-data":
            entries = await _uploaded_entries(request)
        else:
            body: AddEntries = await read_payload(request, services)
            entries = iter(
                EntryInput(hash=int(e.hash, 16), label=e.label, source=e.source)
                for e in body.entries
            )
        async with services.unit_of_work(caller) as uow:
            return await import_entries(uow, list_name=name, entries=entries)

    @post(
        "/{name:str}/entries/disable",
        summary="Disable entries of a list by hash (they stop matching; history stays)",
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
