"""The offline third-party verifier: ``python -m verifier verify IMAGE ...`` and
``python -m verifier token TOKEN ...``.

It needs only published material: trust anchors (our C2PA root, or a trust list), the JWKS
or the key history (``--keys``: every key that ever signed, with its signing period, so
what was signed before a key rotation still verifies), a detached assertion and status
lists, as files or URLs the user names. It imports nothing
that needs a database or the service, and makes no request the user did not ask for.

``--online`` (``verify``, ``token``, ``signed``; ``verifier.cli.online``) asks for more: the
status list of every consent the artifact names, fetched from the ``uri`` of its status
reference (unless ``--status-list`` gave one for that URI), and, when neither ``--keys`` nor
``--jwks`` is given, the key history of the artifact's issuer,
``<iss>/.well-known/registry-keys.json`` (``token --issuer`` names the issuer instead).
Each fetch is bounded in size and by ``--timeout SECONDS`` (default 10, at most 300, also for
the URLs the user names), and goes only to https://, or to http:// on 127.0.0.1 or localhost;
other URIs are not fetched. A fetch that fails, times out, or is not made leaves the status
``status_unknown`` (or, for the key history, the signature unchecked: ``keys_unknown``), so
the answer is indeterminate (exit 2), never ``invalid`` for a network problem; the detail
names the URI. A fetched list that does not verify counts as a supplied one that does not.
A key history taken from the artifact's own ``iss`` proves only that whoever serves that
address signed it: the output names the issuer; pin it (``token --issuer``) or give
``--keys`` fetched from our address yourself.

``verify`` checks an image's C2PA provenance, a given detached assertion, and every consent
the manifest or the assertion names against the supplied status lists. ``token`` checks one
consent token: its signature with the JWKS (``typ: consent+jwt``, EdDSA or ES256), ``exp``,
``nbf`` and ``iat`` with ``--leeway`` seconds of clock skew (default 5, as the registry's),
its issuer, audience and use when asked, that it binds the photo ``--photo`` names (its
assets are salted commitments of each photo's SHA-256: ``asset_mismatch`` if the file is not
one of them), and its status on a supplied list. ``keys HISTORY``
checks a key history and lists its keys; ``signed ARTIFACT`` checks who signed a receipt,
an audit checkpoint, a takedown notice (or any artifact we sign) and when
(``verifier.cli.history``). A key history that does not verify is refused: exit 64.
``audit inclusion`` and ``audit consistency`` check the audit log's Merkle proofs against
signed checkpoint notes, as a monitor does (``verifier.cli.audit``: exit 0, 1 or 64).
``export DIR`` checks a tenant's export (``registry export``) with nothing but its own
contents: the manifest's hashes, the receipts, assertions, token statuses and checkpoint
against its key history, the audit events' hashes and inclusion proofs (``verifier.cli.export``:
exit 0, 1 naming each bad file, or 64). ``watermark IMAGE`` reads our invisible watermark (the
soft binding) from a copy stripped of its manifest and prints its lookup key
(``verifier.cli.watermark``: exit 0 with a key, 1 without, 64).

Exit status, for both commands:

- 0, ``verified`` (a token: ``valid``);
- 1, ``invalid``: a changed byte, a bad signature, a signer that does not chain to the
  anchor, an assertion that fails or names another image, a consent revoked or suspended; a
  token that is malformed, expired, not yet valid, or for another issuer, audience, photo or
  use;
- 2, ``indeterminate``: what could be checked holds, but a status could not be: no verified
  status list for it (``status_unknown``, also a list ``--online`` could not fetch), or one
  older than its ``ttl`` or past its ``exp`` (``status_stale``: fetch it again); or, with
  ``--online``, no key history to check a signature with (``keys_unknown``);
- 64, a usage error or an unreadable input.

``--json`` prints one document: ``verdict`` for ``verify``, ``result`` for ``token``
(``detail`` when a status or the keys could not be had), ``fetched`` (what ``--online``
fetched, each with its ``error``), and ``reasons``, the stable codes of every failing item
(``provenance_<state>``, the assertion's code, ``revoked``, ``suspended``, ``status_stale``,
``status_unknown``, ``keys_unknown``, ``expired``, ``not_yet_valid``, ``signature``,
``malformed``, ``issuer``, ``audience``, ``asset_mismatch``, ``use_not_permitted``; with
``--keys``:
``key_not_valid_at_iat``, the artifact's ``iat`` outside its key's signing period, and
``key_not_valid_for_use``). ``signed`` exits 0, 1, or 2 for ``keys_unknown``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn, TextIO

from verifier.cli.audit import add_audit_parser, audit_command
from verifier.cli.common import EXIT_USAGE, UsageError, safe
from verifier.cli.export import add_export_parser, export_command
from verifier.cli.history import COMMANDS as HISTORY_COMMANDS
from verifier.cli.history import add_commands as add_history_commands
from verifier.cli.history import add_key_arguments
from verifier.cli.image import verify_command
from verifier.cli.online import add_online_arguments
from verifier.cli.token import token_command
from verifier.cli.watermark import add_watermark_parser, watermark_command
from verifier.clock import DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


_COMMANDS = {"export": export_command, "watermark": watermark_command}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2, which here means indeterminate.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in {"token", "signed"} and not (args.jwks or args.keys or args.online):
        parser.error(f"{args.command} needs one of --jwks, --keys or --online")
    try:
        if args.command == "token":
            return token_command(args, out)
        if args.command == "audit":
            return audit_command(args, out)
        if args.command in _COMMANDS:
            return _COMMANDS[args.command](args, out)
        if args.command in HISTORY_COMMANDS:
            return HISTORY_COMMANDS[args.command](args, out)
        return verify_command(args, out)
    except UsageError as exc:
        sys.stderr.write(f"error: {safe(str(exc))}\n")
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m verifier",
        description="Verify an image's C2PA provenance, detached assertion and consent status, "
        "or one consent token, offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify one image")
    check.add_argument("image", help="the image file")
    check.add_argument(
        "--trust", action="append", default=[], metavar="PEM", help="trust anchors (PEM bundle)"
    )
    add_key_arguments(check)
    check.add_argument("--assertion", metavar="JWS|FILE", help="the detached provenance assertion")
    _status_list_argument(check)
    add_online_arguments(
        check,
        what="the status lists of the consents it names and, without --keys or --jwks, "
        "the issuer's key history",
    )
    _leeway_argument(check)
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    token = commands.add_parser("token", help="verify one consent token")
    token.add_argument("token", metavar="TOKEN_OR_FILE", help="the consent token, or a file")
    add_key_arguments(token)
    _status_list_argument(token)
    add_online_arguments(
        token,
        what="its status list and, without --keys or --jwks, the key history of --issuer "
        "(or of its iss)",
    )
    token.add_argument("--audience", metavar="AUD", help="the audience the token must name")
    token.add_argument("--issuer", metavar="ISS", help="the issuer the token must name")
    token.add_argument("--use", metavar="USE", help="a use the token must grant")
    token.add_argument(
        "--photo", metavar="FILE", help="a photo the token must bind (the file, byte for byte)"
    )
    _leeway_argument(token)
    token.add_argument("--json", action="store_true", help="print the result as JSON")
    add_audit_parser(commands)
    _leeway_argument(add_export_parser(commands))
    add_watermark_parser(commands)
    for history_command in add_history_commands(commands):
        _leeway_argument(history_command)
    return parser


def _status_list_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE|URL",
        help="a status list token (repeatable)",
    )


def _leeway_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--leeway",
        type=_leeway,
        default=DEFAULT_LEEWAY_SECONDS,
        metavar="SECONDS",
        help=f"clock skew allowed on exp, nbf and iat (0 to {MAX_LEEWAY_SECONDS}, "
        f"default {DEFAULT_LEEWAY_SECONDS})",
    )


def _leeway(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of seconds") from None
    if not 0 <= seconds <= MAX_LEEWAY_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_LEEWAY_SECONDS} seconds")
    return seconds
