"""The offline third-party verifier: ``python -m verifier verify IMAGE ...`` and
``python -m verifier token TOKEN ...``.

It needs only published material: trust anchors (our C2PA root, or a trust list), the JWKS
or the key history (``--keys``: every key that ever signed, with its signing period, so
what was signed before a key rotation still verifies), a detached assertion and status
lists, as files or URLs the user names. It imports nothing
that needs a database or the service, and makes no request the user did not ask for.

``verify`` checks an image's C2PA provenance, a given detached assertion, and every consent
the manifest or the assertion names against the supplied status lists. ``token`` checks one
consent token: its signature with the JWKS (``typ: consent+jwt``, EdDSA or ES256), ``exp``,
``nbf`` and ``iat`` with ``--leeway`` seconds of clock skew (default 5, as the registry's),
its issuer, audience and use when asked, and its status on a supplied list. ``keys HISTORY``
checks a key history and lists its keys; ``signed ARTIFACT`` checks who signed a receipt,
an audit checkpoint, a takedown notice (or any artifact we sign) and when
(``verifier.cli.history``). A key history that does not verify is refused: exit 64.
``audit inclusion`` and ``audit consistency`` check the audit log's Merkle proofs against
signed checkpoint notes, as a monitor does (``verifier.cli.audit``: exit 0, 1 or 64).

Exit status, for both commands:

- 0, ``verified`` (a token: ``valid``);
- 1, ``invalid``: a changed byte, a bad signature, a signer that does not chain to the
  anchor, an assertion that fails or names another image, a consent revoked or suspended; a
  token that is malformed, expired, not yet valid, or for another issuer, audience or use;
- 2, ``indeterminate``: what could be checked holds, but a status could not be: no verified
  status list for it (``status_unknown``), or one older than its ``ttl`` or past its ``exp``
  (``status_stale``: fetch it again);
- 64, a usage error or an unreadable input.

``--json`` prints one document: ``verdict`` for ``verify``, ``result`` for ``token``, and
``reasons``, the stable codes of every failing item (``provenance_<state>``, the assertion's
code, ``revoked``, ``suspended``, ``status_stale``, ``status_unknown``, ``expired``,
``not_yet_valid``, ``signature``, ``malformed``, ``issuer``, ``audience``,
``use_not_permitted``; with ``--keys``: ``key_not_valid_at_iat``, the artifact's ``iat``
outside its key's signing period, and ``key_not_valid_for_use``).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn, TextIO

from verifier.cli.audit import add_audit_parser, audit_command
from verifier.cli.common import EXIT_USAGE, UsageError, safe
from verifier.cli.history import COMMANDS as HISTORY_COMMANDS
from verifier.cli.history import add_commands as add_history_commands
from verifier.cli.history import add_key_arguments
from verifier.cli.image import verify_command
from verifier.cli.token import token_command
from verifier.clock import DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2, which here means indeterminate.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "token":
            return token_command(args, out)
        if args.command == "audit":
            return audit_command(args, out)
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
    _leeway_argument(check)
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    token = commands.add_parser("token", help="verify one consent token")
    token.add_argument("token", metavar="TOKEN_OR_FILE", help="the consent token, or a file")
    add_key_arguments(token, required=True)
    _status_list_argument(token)
    token.add_argument("--audience", metavar="AUD", help="the audience the token must name")
    token.add_argument("--issuer", metavar="ISS", help="the issuer the token must name")
    token.add_argument("--use", metavar="USE", help="a use the token must grant")
    _leeway_argument(token)
    token.add_argument("--json", action="store_true", help="print the result as JSON")
    add_audit_parser(commands)
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
