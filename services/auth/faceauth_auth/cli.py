"""``faceauth``: the command line for people who run faceauth.

``enrol``, ``login`` and ``users`` call a running auth service over HTTP, as an app backend would
(FACEAUTH_URL, FACEAUTH_API_KEY); ``keys``, ``db``, ``templates``, ``attempts`` and ``audit`` act on the database
directly (the same commands as ``python -m faceauth_auth``); ``eval`` measures accuracy with a progress bar.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from faceauth_auth import __main__ as admin

# Database commands handed to ``python -m faceauth_auth``, with their help here.
ADMIN_GROUPS = {
    "keys": "API keys, JWT and template keys (python -m faceauth_auth keys --help)",
    "db": "database schema (python -m faceauth_auth db --help)",
    "templates": "re-encrypt stored templates, embedder migration status (python -m faceauth_auth templates --help)",
    "attempts": "prune old login attempts (python -m faceauth_auth attempts --help)",
    "audit": "the audit log (python -m faceauth_auth audit --help)",
}


class Api:
    """The auth service's HTTP API with one application's API key."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def upload(self, path: str, user_id: str, photo: Path) -> tuple[int, dict[str, Any]]:
        return self.call("POST", path, {"user_id": user_id, "image": base64.b64encode(photo.read_bytes()).decode()})


def _report(status: int, answer: dict[str, Any]) -> int:
    """Print the service's JSON answer; the exit code is 0 for 2xx, 1 otherwise."""
    print(json.dumps(answer, indent=2))
    return 0 if 200 <= status < 300 else 1


def _eval(argv: list[str]) -> int:
    from facemodels.evaluation.__main__ import main as evaluate

    columns = (TextColumn("LFW images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("lfw", total=None)
        return evaluate(argv, progress=lambda done, total: bar.update(task, completed=done, total=total))


# faceauth users ACTION USER: the HTTP call each action makes on /v1/users/USER.
USER_ACTIONS = {"show": ("GET", ""), "faces": ("GET", "/faces"), "delete": ("DELETE", ""),
                "lock": ("GET", "/lock"), "unlock": ("DELETE", "/lock")}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="faceauth", description=__doc__.splitlines()[0])
    root.add_argument("--url", default=os.environ.get("FACEAUTH_URL", "http://127.0.0.1:8000"),
                      help="the auth service (env FACEAUTH_URL)")
    root.add_argument("--api-key", default=os.environ.get("FACEAUTH_API_KEY", ""),
                      help="an application's API key (env FACEAUTH_API_KEY)")
    commands = root.add_subparsers(dest="command", required=True)
    for name, help_text in (("enrol", "enrol a face for USER from PHOTO"), ("login", "face-login as USER with PHOTO")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("user")
        command.add_argument("photo", type=Path)
    users = commands.add_parser("users", help="show, list faces of, delete (erase) a user; show or lift a "
                                "user id's lock after failed attempts")
    users.add_argument("action", choices=tuple(USER_ACTIONS))
    users.add_argument("user")
    for name, help_text in (*ADMIN_GROUPS.items(),
                            ("eval", "accuracy on LFW and WIDER FACE (faceauth eval --help)")):
        commands.add_parser(name, help=help_text, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
    return root


def main(argv: list[str] | None = None) -> int:
    commands = parser()
    # Options right after a passed-through command (``faceauth audit --help``) are not part of its
    # REMAINDER for argparse; they come back unknown and go to the command with the rest.
    args, unknown = commands.parse_known_args(argv)
    if args.command in ADMIN_GROUPS:
        return admin.main([args.command, *unknown, *args.rest])
    if args.command == "eval":
        return _eval([*unknown, *args.rest])
    if unknown:
        commands.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not args.api_key:
        print("faceauth: give an API key with --api-key or FACEAUTH_API_KEY", file=sys.stderr)
        return 2
    api = Api(args.url, args.api_key)
    if args.command == "enrol":
        return _report(*api.upload("/auth/face-register", args.user, args.photo))
    if args.command == "login":
        return _report(*api.upload("/auth/face-login", args.user, args.photo))
    path = f"/v1/users/{urllib.parse.quote(args.user, safe='')}"
    method, suffix = USER_ACTIONS[args.action]
    return _report(*api.call(method, path + suffix))


if __name__ == "__main__":
    sys.exit(main())
