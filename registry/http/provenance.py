"""Provenance over HTTP: verify any image, sign generated outputs, look up stripped copies.

Uploads are read as a stream with a byte cap per part, so a request is refused as soon as a
part is larger than its cap, and never spooled to disk or held whole beyond the caps. The
image work itself runs in the provenance service's bounded worker threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath  # noqa: TC002 - Litestar reads annotations at runtime
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from registry.core.auth import Client, Role
from registry.core.errors import TooLarge, UnsupportedMediaType
from registry.core.strictjson import parse_strict_json
from registry.gate import misuse
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow, public
from registry.provenance import (
    Lookup,
    PartInvalid,
    PartMissing,
    SignMetadata,
    Upload,
    Verification,
    WatermarkOutput,
)
from registry.services import Services  # noqa: TC001 - Litestar reads annotations at runtime
from verifier import ImageTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks


ASSERTION_HEADER = "Provenance-Assertion"
OUTPUT_ID_HEADER = "Provenance-Output-Id"
# Room for the multipart framing and part headers around the parts themselves.
_FRAMING_BYTES = 64 * 1024
_MAX_PARTS = 4

_FILE_PART: dict[str, Any] = {
    "type": "string",
    "format": "binary",
    "description": "The image (JPEG, PNG or WebP). Its part Content-Type and file name, "
    "when they name an image type, must agree with the bytes.",
}
_VERIFY_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": _FILE_PART},
}
_SIGN_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["file", "metadata"],
    "properties": {
        "file": _FILE_PART,
        "metadata": {
            **msgspec.json.schema(SignMetadata),
            "description": "JSON (strict: duplicate keys and unknown fields are refused): "
            "generation_id, model, consent_tokens, and optionally decision_id and "
            "edited_reference.",
        },
    },
    "encoding": {"metadata": {"contentType": "application/json"}},
}


class _Part(msgspec.Struct, kw_only=True):
    name: str
    content_type: str | None
    filename: str | None
    data: bytearray


class _PartReader:
    """Collects named parts from a multipart stream, each within its byte cap."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps
        self.parts: dict[str, _Part] = {}
        self.ended = False
        self._current: _Part | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        if len(self.parts) >= _MAX_PARTS:
            raise PartInvalid(f"at most {_MAX_PARTS} parts")
        self._headers = []
        self._current = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field.extend(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value.extend(data[start:end])

    def _header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        headers = dict(self._headers)
        disposition, params = parse_options_header(headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if disposition != b"form-data" or name not in self.caps:
            expected = ", ".join(sorted(self.caps))
            raise PartInvalid(f"unexpected part {name[:64]!r}; this endpoint takes {expected}")
        if name in self.parts:
            raise PartInvalid(f"the part {name!r} appears more than once")
        filename = params.get(b"filename")
        content_type = headers.get(b"content-type")
        self._current = _Part(
            name=name,
            content_type=content_type.decode("latin-1").strip() if content_type else None,
            filename=filename.decode("utf-8", "replace") if filename is not None else None,
            data=bytearray(),
        )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        if part is None:
            raise PartInvalid("part data before its headers")
        part.data.extend(data[start:end])
        cap = self.caps[part.name]
        if len(part.data) > cap:
            if part.name == "file":
                raise ImageTooLarge(f"the image is larger than {cap} bytes")
            raise TooLarge(f"the {part.name!r} part is larger than {cap} bytes", limit=cap)

    def _part_end(self) -> None:
        if self._current is not None:
            self.parts[self._current.name] = self._current
        self._current = None

    def _end(self) -> None:
        self.ended = True


async def read_parts(
    request: Request[Any, Any, Any], caps: dict[str, int], required: tuple[str, ...]
) -> dict[str, _Part]:
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("send the body as multipart/form-data")
    limit = sum(caps.values()) + _FRAMING_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request is larger than {limit} bytes", limit=limit)
    reader = _PartReader(caps)
    parser = MultipartParser(boundary, reader.callbacks(), max_size=limit)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"the request is larger than {limit} bytes", limit=limit)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise PartInvalid("the multipart body does not parse") from None
    if not reader.ended:
        raise PartInvalid("the multipart body ends before its closing boundary")
    for name in required:
        if name not in reader.parts:
            raise PartMissing(f"the {name!r} part is required")
    return reader.parts


def _upload(part: _Part) -> Upload:
    return Upload(data=bytes(part.data), content_type=part.content_type, filename=part.filename)


def _image_caps(services: Services) -> dict[str, int]:
    return {"file": services.settings.max_image_bytes}


class ProvenanceController(Controller):
    path = "/v1/provenance"
    tags = ["provenance"]  # noqa: RUF012 - Litestar reads class attributes

    @post(
        "/verify",
        summary="Verify an image's C2PA provenance, and find it among our signed outputs",
        description=(
            "The C2PA report (`state`: trusted, valid_untrusted, invalid, absent, "
            "remote_manifest or unsupported; failure and success codes; signer, actions, "
            "ingredients, our consent and decision assertions); `image`: whether the pixels "
            "decode (`decoded`, and when not, `problem` and `detail`), reported apart from the "
            "C2PA verdict: a file whose pixels do not decode (a flipped header byte, a "
            "truncated file) is still verified, and a broken manifest is `invalid` with C2PA's "
            "codes either way; and `registry`: when the "
            "image is one of our signed outputs (same SHA-256, or a perceptual hash within "
            "the configured distance when its metadata was stripped and its pixels decode), "
            "its record and the current status of every consent it used (`match`: `sha256`, "
            "`perceptual`, or `watermark` when only our invisible watermark in the pixels names "
            "it); `watermark`: the key our watermark in the pixels carries and the output it "
            "names, when there is one. Limits still refuse "
            "the file (413, 415, 422 for a type mismatch or too many pixels). Public and "
            "rate-limited per address."
        ),
        guards=[public],
        status_code=200,
        opt={"multipart": _VERIFY_PARTS},
    )
    async def verify(self, request: Request[Any, Any, Any], services: AppServices) -> Verification:
        parts = await read_parts(request, _image_caps(services), ("file",))
        async with services.connection() as conn:
            return await services.provenance.verify(conn, _upload(parts["file"]))

    @post(
        "/lookup",
        summary="Find our signed outputs that look like this image (a soft binding)",
        description=(
            "Signed outputs whose 64-bit perceptual hash lies within the configured distance "
            "of the image's, nearest first, each with its detached provenance assertion, so a "
            "copy whose manifest was stripped can still be traced. The image's pixels are also "
            "read for our invisible watermark (the outputs' `c2pa.soft-binding`): "
            "`watermark_key` is the key read (null when none), and the output it names is "
            "marked `found_by: watermark` (first when its pHash is further than the distance; "
            "the others are `perceptual`). An image too small to carry the mark reads none. "
            "Public and rate-limited."
        ),
        guards=[public],
        status_code=200,
        opt={"multipart": _VERIFY_PARTS},
    )
    async def lookup(self, request: Request[Any, Any, Any], services: AppServices) -> Lookup:
        parts = await read_parts(request, _image_caps(services), ("file",))
        async with services.connection() as conn:
            return await services.provenance.lookup(conn, _upload(parts["file"]))

    @get(
        "/watermarks/{key:str}",
        summary="The signed output a watermark key names (read offline, no image sent)",
        description=(
            "For a key read from an image's pixels offline (`python -m verifier watermark "
            "IMAGE`): the output that carries it, as `/lookup` shows it, without sending the "
            "image. A key is 10 lower-case hex characters (else 400 `watermark_key_invalid`); "
            "one no output carries is 404 `watermark_key_not_found`. Public and rate-limited."
        ),
        guards=[public],
    )
    async def watermark(self, services: AppServices, key: FromPath[str]) -> WatermarkOutput:
        async with services.connection() as conn:
            return await services.provenance.watermark(conn, key)

    @post(
        "/sign",
        summary="Sign a generated output: embedded C2PA manifest and detached assertion",
        description=(
            "Checks every consent token (signature, expiry, audience = the calling client, "
            "live revocation status), embeds a C2PA manifest signed with the registry's "
            "certificate (AI-generated digital source type, the model, the reference assets "
            "by hash, the consent tokens and the gate decision), records the output and "
            "returns the signed image as the body, in the same media type. Headers: "
            "`Provenance-Assertion` (compact JWS, `typ: provenance+jwt`, verifiable with the "
            "JWKS) and `Provenance-Output-Id`. A token that is not valid: 422 "
            "`consent_token_invalid`, or `token_expired` when the only failure is expiry (ask "
            "for fresh tokens); nothing signed or recorded, and `tokens` lists each failing "
            "token's reasons. The same `generation_id` "
            "signed again by the same client: 409 `generation_already_signed` (each output is "
            "signed once; keep the first response). A `decision_id` must name a publish "
            "decision of the caller's tenant (else 422 `decision_unknown`) whose outcome is "
            "`allowed` (else 422 `decision_not_allowed`). With a timestamp authority "
            "configured (`REGISTRY_C2PA_TSA_URL`) the signature carries its RFC 3161 "
            "timestamp; a TSA that gives no trusted timestamp: 503 `timestamp_unavailable` "
            "(`reason`), nothing signed or recorded. The manifest also carries the CAWG "
            "training-and-data-mining assertion: AI training `notAllowed` unless every "
            "consent token carries `ai.training`, then `constrained`. The pixels carry our "
            "invisible watermark (a random lookup key, declared as a `c2pa.soft-binding` "
            "assertion; not for images under 64 px, palette or 16-bit images), embedded before "
            "the manifest and re-encoded at the upload's own quality. A client or model "
            "suspended by a stop condition: 403 `suspended_misuse` (`suspension_id`); "
            "signing paused by the operator: 503 `feature_paused`; nothing signed."
        ),
        guards=[allow(Role.GENERATOR)],
        security=BEARER,
        status_code=200,
        media_type="image/*",
        opt={"multipart": _SIGN_PARTS},
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
    ) -> Response[bytes]:
        caps = {**_image_caps(services), "metadata": services.settings.max_json_bytes}
        parts = await read_parts(request, caps, ("file", "metadata"))
        metadata = parse_strict_json(
            bytes(parts["metadata"].data),
            SignMetadata,
            max_depth=services.settings.max_json_depth,
        )
        provenance = services.provenance
        async with services.connection() as conn:
            await misuse.check_signing(conn, client_id=caller.client_id, model=metadata.model)
            plan = await provenance.plan_signing(conn, actor=caller, metadata=metadata)
        signed = await provenance.sign(_upload(parts["file"]), plan)
        async with services.unit_of_work(caller) as uow:
            event = await provenance.record(uow.conn, actor=caller, plan=plan, signed=signed)
            uow.record_all([event])
        return Response(
            signed.data,
            media_type=signed.media_type,
            headers={
                ASSERTION_HEADER: signed.assertion,
                OUTPUT_ID_HEADER: signed.output_id,
                "Cache-Control": "no-store",
            },
        )
