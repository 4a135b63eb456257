"""Management commands: ``python -m faceauth_auth {db upgrade | keys create | keys revoke | keys generate-jwt}``.

They read the same FACEAUTH_* variables as the service (FACEAUTH_DATABASE_URL above all).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceauth import logs
from faceauth_auth import apikeys, migrate, tokens
from faceauth_auth.config import OPERATING_POINTS, Settings
from faceauth_auth.db import Database, create_engine


def _database(settings: Settings) -> Database:
    engine = create_engine(settings.database_url)
    migrate.upgrade(engine)
    return Database(engine)


def db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    migrate.upgrade(create_engine(settings.database_url))
    print("database schema is up to date")
    return 0


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings).transaction() as session:
        key_id, key = apikeys.create(session, args.app, operating_point=args.operating_point)
    print(f"application: {args.app}\nkey id:      {key_id}\napi key:     {key}\n"
          "Store the key now: it is not shown again and only its hash is kept.")
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
    create.set_defaults(run=keys_create)
    revoke = keys.add_parser("revoke", help="revoke an API key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=keys_revoke)
    generate = keys.add_parser("generate-jwt", help="write current.pem and next.pem signing keys (kept if present)")
    generate.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    generate.add_argument("--algorithm", choices=tokens.ALGORITHMS, default="ES256")
    generate.set_defaults(run=keys_generate_jwt)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    logs.configure("auth", settings.log_level)
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
