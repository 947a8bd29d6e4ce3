"""The ``registry`` command tree and ``main``, which loads the settings and runs a command."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from typing import TYPE_CHECKING

from registry.cli import clients, export, hashes
from registry.cli.audit import cmd_audit_checkpoint, cmd_audit_verify
from registry.cli.keys import cmd_keys_rotate, cmd_new_master_key
from registry.cli.openapi import cmd_openapi
from registry.cli.output import CommandError
from registry.cli.policy import cmd_policy_check, cmd_policy_redteam
from registry.cli.serve import cmd_migrate, cmd_serve
from registry.cli.supervise import drop_metrics_dir
from registry.core import settings as settings_module

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="registry", description="Consent and provenance registry service."
    )
    parser.add_argument(
        "--version", action="version", version=f"registry {metadata.version('consent-registry')}"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    keys_p = sub.add_parser("keys", help="token-signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys_p.add_parser(
        "rotate", parents=[as_json], help="rotate the token-signing key"
    ).set_defaults(func=cmd_keys_rotate)
    keys_p.add_parser(
        "new-master-key", parents=[as_json], help="print a fresh REGISTRY_MASTER_KEY value"
    ).set_defaults(func=cmd_new_master_key, needs_settings=False)

    clients.add_commands(sub.add_parser("clients", help="API clients and their keys"), as_json)

    audit_p = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True
    )
    audit_p.add_parser(
        "verify", parents=[as_json], help="recompute the hash chain and compare checkpoints"
    ).set_defaults(func=cmd_audit_verify)
    audit_p.add_parser(
        "checkpoint", parents=[as_json], help="sign a checkpoint of the current head"
    ).set_defaults(func=cmd_audit_checkpoint)

    policy_p = sub.add_parser("policy", help="the publish-gate policy").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy_p.add_parser(
        "check", help="validate a policy file and replay it over the stored decisions"
    )
    check.add_argument("file")
    check.set_defaults(func=cmd_policy_check)
    redteam = policy_p.add_parser(
        "redteam",
        parents=[as_json],
        help="replay a red-team corpus under a policy; exit 1 if a case became more permissive",
    )
    redteam.add_argument(
        "--policy", metavar="FILE", help="the policy to test (default: the configured one)"
    )
    redteam.add_argument(
        "corpus",
        nargs="?",
        metavar="CORPUS_DIR",
        help="a directory of case files (default: the corpus shipped with the service)",
    )
    redteam.set_defaults(func=cmd_policy_redteam)

    hashes.add_commands(sub.add_parser("hashes", help="perceptual-hash lists"), as_json)

    export.add_command(sub, as_json)

    oa = sub.add_parser("openapi", help="export the OpenAPI document")
    oa.add_argument("--output", default="openapi/openapi.json")
    oa.add_argument("--check", action="store_true", help="fail when the file is stale")
    oa.set_defaults(func=cmd_openapi, needs_settings=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``registry`` with ``argv`` (default: the process's arguments); the exit code."""
    # Before anything imports prometheus_client: the commands keep their metrics in memory,
    # and `registry serve`'s supervisor names a fresh directory for its workers itself.
    drop_metrics_dir()
    args = _parser().parse_args(argv)
    import keys  # noqa: PLC0415
    from registry.core import db, logs  # noqa: PLC0415
    from registry.core.errors import RegistryError  # noqa: PLC0415
    from registry.core.settings import SettingsError  # noqa: PLC0415

    try:
        settings = None
        if getattr(args, "needs_settings", True):
            settings = settings_module.load()
            logs.configure(settings.log_level, json_lines=settings.log_json)
            from registry.compose import check_settings  # noqa: PLC0415 - after the cheap checks

            check_settings(settings)
        code: int = args.func(settings, args)
    except SettingsError as exc:
        sys.stderr.write(f"registry: configuration error: {exc}\n")
        return 2
    except db.DatabaseError as exc:
        sys.stderr.write(f"registry: database error: {exc}\n")
        return 2
    except keys.KeysError as exc:
        sys.stderr.write(f"registry: key error ({exc.code}): {exc}\n")
        return 2
    except (RegistryError, CommandError) as exc:
        sys.stderr.write(f"registry: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return code
