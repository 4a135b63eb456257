"""Management commands: ``python -m faceauth_auth {db upgrade | apps liveness | keys create | keys revoke |
keys generate-jwt | keys generate-template-key | keys generate-api-key-pepper | templates reencrypt |
templates migration-status | users unlock | attempts prune | audit list | audit prune | audit verify}``.

They read the same FACEAUTH_* variables as the service (FACEAUTH_DATABASE_URL above all).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from faceauth import logs
from faceauth.grpc.client import EmbedderClient
from faceauth_auth import apikeys, migrate, templatecrypto, tokens
from faceauth_auth.config import LIVENESS_ALIASES, LIVENESS_POLICIES, OPERATING_POINTS, Settings, canonical_policy
from faceauth_auth.db import Database, create_engine
from faceauth_auth.faces import EmbeddingModel
from faceauth_auth.lockout import LockoutPolicy
from faceauth_auth.models import AuditEvent
from faceauth_auth.reencrypt import reencrypt
from faceauth_auth.repositories import applications, audit, users
from faceauth_auth.repositories.audit import Event
from faceauth_auth.retention import AUDIT_MIN_KEEP, prune_audit_events, prune_login_attempts
from faceauth_auth.templatecrypto import TemplateDecryptionError


def _database(settings: Settings) -> Database:
    engine = create_engine(settings.database_url)
    migrate.upgrade(engine)
    return Database(engine)


def db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    migrate.upgrade(create_engine(settings.database_url), runtime_role=settings.db_runtime_role)
    granted = f"; role {settings.db_runtime_role} granted the service's rights" if settings.db_runtime_role else ""
    print(f"database schema is up to date{granted}")
    return 0


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        hasher = apikeys.hasher_from_settings(settings)
    except apikeys.PepperError as error:
        print(error, file=sys.stderr)
        return 1
    lifetime = timedelta(days=args.expires_in_days) if args.expires_in_days is not None else None
    with _database(settings).transaction() as session:
        key_id, key = apikeys.create(session, args.app, operating_point=args.operating_point, hasher=hasher,
                                     scopes=args.scopes, expires_in=lifetime)
    expiry = (datetime.now(UTC) + lifetime).isoformat(timespec="seconds") if lifetime else "never (until revoked)"
    print(f"application: {args.app}\nkey id:      {key_id}\nscopes:      {' '.join(sorted(args.scopes))}\n"
          f"expires:     {expiry}\napi key:     {key}\n"
          "Store the key now: it is not shown again and only its keyed hash is kept.")
    return 0


def keys_generate_api_key_pepper(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        templatecrypto.generate_key_file(args.out)  # the same format: base64 of 32 random bytes, mode 0600
    except FileExistsError:
        print(f"{args.out} exists; a pepper is never overwritten (every stored API key depends on it)",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out}\nFACEAUTH_API_KEY_PEPPER_FILE={args.out}")
    return 0


def apps_liveness(settings: Settings, args: argparse.Namespace) -> int:
    policy = None if args.policy == "default" else canonical_policy(args.policy)
    with _database(settings).transaction() as session:
        found = applications.set_liveness_policy(session, args.app, policy)
    if not found:
        print(f"no application {args.app}", file=sys.stderr)
        return 1
    print(f"{args.app}: liveness policy {args.policy if policy else 'default (FACEAUTH_LIVENESS_POLICY)'}")
    return 0


def keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings).transaction() as session:
        revoked = apikeys.revoke(session, args.key_id)
    print(f"revoked {args.key_id}" if revoked else f"no active key {args.key_id}")
    return 0 if revoked else 1


def keys_generate_jwt(_settings: Settings, args: argparse.Namespace) -> int:
    written = tokens.write_key_pair(args.out, args.algorithm)
    for name in ("current.pem", "next.pem"):
        path = args.out / name
        print(f"{'wrote' if path in written else 'kept '} {path} (kid {tokens.load_key(path).kid})")
    print(f"FACEAUTH_JWT_CURRENT_KEY_FILE={args.out / 'current.pem'}")
    print(f"FACEAUTH_JWT_NEXT_KEY_FILE={args.out / 'next.pem'}")
    return 0


def keys_generate_template_key(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        key_id = templatecrypto.generate_key_file(args.out)
    except FileExistsError:
        print(f"{args.out} exists; a template key is never overwritten", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (key id {key_id})\nFACEAUTH_TEMPLATE_KEY_FILE={args.out}")
    return 0


def templates_reencrypt(settings: Settings, args: argparse.Namespace) -> int:
    cipher = templatecrypto.from_settings(settings)
    try:
        moved = reencrypt(_database(settings), cipher, args.batch_size)
    except (ValueError, TemplateDecryptionError) as error:
        print(f"stopped: {error}; batches done so far are kept, run again once fixed", file=sys.stderr)
        return 1
    print(f"{moved} templates sealed under key {cipher.current_key_id}; every template is under it now")
    return 0


def templates_migration_status(settings: Settings, args: argparse.Namespace) -> int:
    """Ask the embedder which models it serves, then count each application's users by their templates."""
    try:
        reply = EmbedderClient(settings.embedder_target, settings.grpc_timeout, tls=settings.grpc_tls).model_info()
    except grpc.RpcError as error:
        print(f"the embedder at {settings.embedder_target} did not answer: {error.code().name}", file=sys.stderr)
        return 1
    served = [EmbeddingModel(item.model.name, int(item.model.version), int(item.embedding_size))
              for item in reply.served]
    primary, legacy = served[0], tuple(served[1:])
    print(f"primary model {primary.label}; legacy models {', '.join(m.label for m in legacy) or 'none'}",
          file=sys.stderr)
    with _database(settings).transaction() as session:
        for status in users.migration_status(session, primary, legacy):
            print(json.dumps(status.as_dict()))
    return 0


def attempts_prune(settings: Settings, args: argparse.Namespace) -> int:
    deleted, cutoff = prune_login_attempts(_database(settings), timedelta(days=args.keep_days),
                                           timedelta(seconds=settings.lockout_window), args.batch_size)
    print(f"{deleted} login attempts older than {cutoff.isoformat(timespec='seconds')} deleted")
    return 0


def users_unlock(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings).transaction() as session:
        application = applications.find(session, args.app)
        if application is None:
            print(f"no application {args.app}", file=sys.stderr)
            return 1
        was_locked = LockoutPolicy.unlock(session, application.id, args.user_id)
        audit.record(session, Event.ACCOUNT_UNLOCKED, "success", application_id=application.id,
                     user_id=args.user_id, detail="was locked" if was_locked else "was not locked")
    print(f"{args.app}/{args.user_id}: {'unlocked' if was_locked else 'was not locked; its counts are cleared'}")
    return 0


def audit_prune(settings: Settings, args: argparse.Namespace) -> int:
    deleted, cutoff = prune_audit_events(_database(settings), timedelta(days=args.keep_days), args.batch_size)
    print(f"{deleted} audit events older than {cutoff.isoformat(timespec='seconds')} deleted")
    return 0


def audit_verify(settings: Settings, _args: argparse.Namespace) -> int:
    with _database(settings).transaction() as session:
        result = audit.verify(session)
    if result.ok:
        print(f"OK: {result.checked} audit events, each linked to the one before it and the newest to the chain head")
        return 0
    where = f"event {result.broken_at}" if result.broken_at is not None else "the chain head"
    print(f"BROKEN at {where} ({result.checked} events before it verified): {result.reason}")
    return 1


def _event_json(event: AuditEvent) -> str:
    return json.dumps({column.key: getattr(event, column.key) for column in AuditEvent.__table__.columns},
                      default=str)


def audit_list(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings).transaction() as session:
        application = applications.find(session, args.app) if args.app else None
        if args.app and application is None:
            print(f"no application {args.app}", file=sys.stderr)
            return 1
        wanted = audit.Filter(application_id=application.id if application else None, user_id=args.user_id,
                              event=args.event, since=args.since, before=args.before, limit=args.limit)
        for event in audit.events(session, wanted):
            print(_event_json(event))
    return 0


def _days_from(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number of days from ``minimum`` to 100 years."""
    def days(text: str) -> float:
        value = float(text)
        if not minimum <= value <= 36500:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"{text} is not a number of days from {minimum:g} to 36500")
        return value
    return days


def _scopes(text: str) -> frozenset[str]:
    try:
        return apikeys.parse_scopes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m faceauth_auth", description=__doc__)
    groups = root.add_subparsers(dest="group", required=True)
    db = groups.add_parser("db", help="database schema").add_subparsers(dest="command", required=True)
    db.add_parser("upgrade", help="apply every pending migration").set_defaults(run=db_upgrade)
    keys = groups.add_parser("keys", help="API keys and JWT signing keys").add_subparsers(dest="command",
                                                                                        required=True)
    create = keys.add_parser("create", help="create an API key (and the application if new); prints it once")
    create.add_argument("--app", required=True, help="application name")
    create.add_argument("--operating-point", choices=OPERATING_POINTS,
                        help="match threshold for the application: default (FMR 1e-3) or strict (FMR 1e-4)")
    create.add_argument("--scopes", type=_scopes, default=apikeys.ALL_SCOPES,
                        help="comma-separated: enrol (face-register), login (face-login, -verify, -identify, "
                             "detect), admin (users, faces, audit log); default all three")
    create.add_argument("--expires-in-days", type=_days_from(1 / 24),
                        help="the key stops working this many days from now (default: never, until revoked)")
    create.set_defaults(run=keys_create)
    user_group = groups.add_parser("users", help="end users of an application").add_subparsers(dest="command",
                                                                                              required=True)
    unlock = user_group.add_parser("unlock", help="lift a user id's lock after failed face attempts (also a "
                                   "permanent one) and clear its counts; audited")
    unlock.add_argument("--app", required=True, help="application name")
    unlock.add_argument("--user-id", required=True)
    unlock.set_defaults(run=users_unlock)
    apps = groups.add_parser("apps", help="client applications").add_subparsers(dest="command", required=True)
    liveness = apps.add_parser("liveness", help="set an application's liveness policy (docs/security.md)")
    liveness.add_argument("--app", required=True, help="application name")
    liveness.add_argument("--policy", required=True, choices=(*LIVENESS_POLICIES, *LIVENESS_ALIASES, "default"),
                          help="off, report (log and count the passive score), enforce-passive (refuse faces the "
                               "passive score calls attacks; enforce is the old name), challenge (also require an "
                               "answered liveness challenge, POST /v1/challenges), or default: follow "
                               "FACEAUTH_LIVENESS_POLICY")
    liveness.set_defaults(run=apps_liveness)
    revoke = keys.add_parser("revoke", help="revoke an API key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=keys_revoke)
    generate = keys.add_parser("generate-jwt", help="write current.pem and next.pem signing keys (kept if present)")
    generate.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    generate.add_argument("--algorithm", choices=tokens.ALGORITHMS, default="ES256")
    generate.set_defaults(run=keys_generate_jwt)
    template_key = keys.add_parser("generate-template-key",
                                   help="write a new AES-256 template key (base64, mode 0600; never overwritten)")
    template_key.add_argument("--out", type=Path, required=True, help="the key file to create")
    template_key.set_defaults(run=keys_generate_template_key)
    pepper = keys.add_parser("generate-api-key-pepper",
                             help="write a new API key pepper (FACEAUTH_API_KEY_PEPPER_FILE; base64, mode 0600; "
                                  "never overwritten)")
    pepper.add_argument("--out", type=Path, required=True, help="the pepper file to create")
    pepper.set_defaults(run=keys_generate_api_key_pepper)
    templates = groups.add_parser("templates", help="stored face templates").add_subparsers(dest="command",
                                                                                          required=True)
    reseal = templates.add_parser("reencrypt", help="seal every template under FACEAUTH_TEMPLATE_KEY_FILE in "
                                  "batches (resumable); old keys go in FACEAUTH_TEMPLATE_PREVIOUS_KEY_FILES")
    reseal.add_argument("--batch-size", type=int, default=500, help="templates per transaction")
    reseal.set_defaults(run=templates_reencrypt)
    templates.add_parser("migration-status", help="per application, how many users have a template of the "
                         "embedder's primary model (JSON lines); the rest move at their next login while "
                         "their legacy model is served").set_defaults(run=templates_migration_status)
    login_attempts = groups.add_parser("attempts", help="recorded face-login attempts").add_subparsers(
        dest="command", required=True)
    prune = login_attempts.add_parser("prune", help="delete login attempts older than --keep-days (never those "
                                      "inside FACEAUTH_LOCKOUT_WINDOW), in batches; run it daily")
    prune.add_argument("--keep-days", type=_days_from(0), default=30.0,
                       help="days of login attempts to keep (default 30)")
    prune.add_argument("--batch-size", type=_positive_int, default=5000, help="rows per transaction")
    prune.set_defaults(run=attempts_prune)
    log = groups.add_parser("audit", help="the audit log").add_subparsers(dest="command", required=True)
    listing = log.add_parser("list", help="audit events as JSON lines, newest first")
    listing.add_argument("--app", help="application name (default: every application, and operator events)")
    listing.add_argument("--user-id")
    listing.add_argument("--event", type=Event, choices=list(Event))
    listing.add_argument("--since", type=audit.parse_time, help="ISO 8601 date-time (UTC unless it has an offset)")
    listing.add_argument("--before", type=int, help="only events with a smaller id (the next page)")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=audit_list)
    prune_log = log.add_parser("prune", help="delete audit events older than --keep-days, in batches, each "
                               "batch audited; run it daily")
    prune_log.add_argument("--keep-days", type=_days_from(AUDIT_MIN_KEEP.days), default=365.0,
                           help=f"days of audit events to keep (default 365, at least {AUDIT_MIN_KEEP.days})")
    prune_log.add_argument("--batch-size", type=_positive_int, default=5000, help="rows per transaction")
    prune_log.set_defaults(run=audit_prune)
    log.add_parser("verify", help="check the hash chain from the oldest event left to the newest; exit 1 and "
                   "name the first broken link if there is one").set_defaults(run=audit_verify)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    logs.configure("auth", settings.log_level)
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
