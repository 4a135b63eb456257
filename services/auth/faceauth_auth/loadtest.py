"""``python -m faceauth_auth.loadtest``: drive the stack past its capacity; it must shed load, never hang.

Client threads send a realistic mix of real 640x480 LFW photos: 90 % face logins (one in nine by an
impostor) and 10 % enrolments of new users. Their number doubles step by step past capacity, then
drops back to check that the stack recovers. Each step prints throughput, latency percentiles and
the share of each answer; the verdict says whether the stack shed load with 429/503, whether any
request went unanswered (a client timeout or a refused connection: overload must never be silent),
whether a service process died, and whether the last step was served normally. The exit status is
1 when the stack crashed, left a request unanswered or did not recover.

The stack is --url (or FACEAUTH_URL) with --api-key (or FACEAUTH_API_KEY). Without a URL and with
nothing answering on the default one, the load test starts a stack of its own (bench.Stack).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth.grpc.bench import hammer
from faceauth_auth.bench import Stack, face_request, jpeg, people_by_photo_count

DEFAULT_URL = "http://127.0.0.1:8000"
LOGIN, IMPOSTOR, ENROL = "login", "impostor", "enrol"
MIX = {LOGIN: 8, IMPOSTOR: 1, ENROL: 1}  # in tenths: 90 % logins (a ninth of them impostors), 10 % enrolments
PLAN_LENGTH = 200  # actions the clients cycle through
PHOTOS_PER_PERSON = 16  # tried at seeding: the first one that enrols, the rest if they log in
# Refusals that say "come back later": the stack shedding load.
SHED = frozenset({"overloaded", "service_unavailable", "rate_limited"})
# Answers of a stack doing its job: a token, a new face, an impostor refused or locked out.
NORMAL = frozenset({"ok", "face_mismatch", "too_many_attempts"})
BACKOFF_CAP = 2.0  # seconds: clients honour Retry-After after a shed answer, up to this
STATUS_GROUPS = ("2xx", "401", "429", "503", "other")


@dataclass(frozen=True)
class Target:
    """A running auth service and the API key of the application the load test acts as."""

    url: str
    api_key: str


@dataclass(frozen=True)
class Action:
    kind: str  # LOGIN, IMPOSTOR or ENROL
    user_id: str  # for ENROL, unused: every enrolment creates a new user
    image: bytes


@dataclass(frozen=True)
class Answer:
    kind: str
    user_id: str
    seconds: float
    status: int | None  # None when no HTTP answer came
    code: str  # "ok", the error code, "timeout" or "connection_error"
    retry_after: float = 0.0  # seconds, from the Retry-After header

    @property
    def group(self) -> str:
        if self.status is None:
            return self.code
        if 200 <= self.status < 300:
            return "2xx"
        return str(self.status) if str(self.status) in STATUS_GROUPS else "other"


def _error_code(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "not_json"


def send(target: Target, kind: str, user_id: str, image: bytes, timeout: float) -> Answer:
    """One enrolment or login; never raises: timeouts and broken connections become answers too."""
    path = "/auth/face-register" if kind == ENROL else "/auth/face-login"
    request = face_request(target.url, target.api_key, path, user_id, image)
    started = time.perf_counter()
    status: int | None = None
    retry_after = 0.0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status, code = response.status, "ok"
    except urllib.error.HTTPError as error:
        status, code = error.code, _error_code(error.read())
        retry_after = float(error.headers.get("Retry-After") or 0)
    except urllib.error.URLError as error:  # while connecting
        code = "timeout" if isinstance(error.reason, TimeoutError) else "connection_error"
    except TimeoutError:  # while waiting for the answer
        code = "timeout"
    except (OSError, http.client.HTTPException):  # reset, closed without an answer
        code = "connection_error"
    return Answer(kind, user_id, time.perf_counter() - started, status, code, retry_after)


def delete_user(target: Target, user_id: str, timeout: float) -> None:
    request = urllib.request.Request(f"{target.url}/v1/users/{user_id}", method="DELETE",
                                     headers={"Authorization": f"Bearer {target.api_key}"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise


@dataclass(frozen=True)
class Seed:
    """Users enrolled before the run and the photos the clients send."""

    users: list[str]
    genuine: list[Action]  # photos that logged their user in during seeding
    decoy: str  # the user impostors claim to be, so a lockout never hits the genuine users

    def plan(self, rng: random.Random) -> list[Action]:
        """PLAN_LENGTH actions in MIX's proportions, shuffled; impostors and new users reuse the genuine photos."""
        kinds = [kind for kind, tenths in MIX.items() for _ in range(PLAN_LENGTH * tenths // 10)]
        rng.shuffle(kinds)
        claimed = {IMPOSTOR: self.decoy, ENROL: ""}
        actions = []
        for kind in kinds:
            photo = rng.choice(self.genuine)
            actions.append(photo if kind == LOGIN else Action(kind, claimed[kind], photo.image))
        return actions


def seed(target: Target, people: list[Path], photos_per_person: int, prefix: str, timeout: float) -> Seed:
    """Enrol each person (the last one as the impostors' decoy) from their first usable photo; keep the
    photos that then log them in. Also warms up every service."""
    users, genuine = [], []
    for index, folder in enumerate(people):
        user_id = f"{prefix}-decoy" if index == len(people) - 1 else f"{prefix}-{index}"
        photos = [jpeg(path) for path in sorted(folder.glob("*.jpg"))[:photos_per_person]]
        enrolled = next((n for n, image in enumerate(photos)
                         if send(target, ENROL, user_id, image, timeout).status == 201), None)
        if enrolled is None:
            raise RuntimeError(f"no photo of {folder.name} could be enrolled")
        users.append(user_id)
        if index < len(people) - 1:
            genuine += [Action(LOGIN, user_id, image) for image in photos[enrolled + 1:]
                        if send(target, LOGIN, user_id, image, timeout).status == 200]
    if not genuine:
        raise RuntimeError("no seeded photo logs its user in")
    return Seed(users, genuine, users[-1])


@dataclass(frozen=True)
class Step:
    clients: int
    seconds: float
    answers: list[Answer]

    def _count(self, keep: Callable[[Answer], bool]) -> int:
        return sum(1 for answer in self.answers if keep(answer))

    def per_second(self, keep: Callable[[Answer], bool] = lambda _: True) -> float:
        return self._count(keep) / self.seconds

    def share(self, group: str) -> float:
        return self._count(lambda a: a.group == group) / max(len(self.answers), 1)

    def percentile_ms(self, q: float, keep: Callable[[Answer], bool] = lambda a: a.status is not None) -> float:
        latencies = [a.seconds for a in self.answers if keep(a)]
        return float(np.percentile(latencies, q) * 1000) if latencies else float("nan")

    @property
    def logins(self) -> int:
        return self._count(lambda a: a.kind == LOGIN and a.status == 200)

    @property
    def timeouts(self) -> int:
        return self._count(lambda a: a.code == "timeout")

    @property
    def errors(self) -> int:
        return self._count(lambda a: a.code == "connection_error")

    @property
    def shed(self) -> int:
        return self._count(lambda a: a.code in SHED)

    @property
    def normal(self) -> bool:
        """Every answer is the stack doing its job, and somebody logged in."""
        return self.logins > 0 and all(a.code in NORMAL for a in self.answers)

    def line(self) -> str:
        shares = " ".join(f"{self.share(group) * 100:>5.1f}" for group in STATUS_GROUPS)
        return (f"{self.clients:>7} {self.per_second():>7.1f} {self.logins / self.seconds:>8.1f} "
                f"{self.percentile_ms(50):>7.0f} {self.percentile_ms(95):>7.0f} {self.percentile_ms(99):>7.0f} "
                f"{self.percentile_ms(99, lambda a: a.code in SHED):>8.0f} {shares} {self.timeouts:>8} "
                f"{self.errors:>6}")


HEADER = (f"{'clients':>7} {'req/s':>7} {'logins/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'shed p99':>8} "
          + " ".join(f"{group:>5}" for group in STATUS_GROUPS) + f" {'timeouts':>8} {'errors':>6}")


@dataclass(frozen=True)
class Report:
    steps: list[Step]  # the last one is the recovery step
    deaths: list[str]  # service processes that died during the run

    @property
    def shed(self) -> bool:
        return any(step.shed for step in self.steps)

    @property
    def unanswered(self) -> int:
        return sum(step.timeouts + step.errors for step in self.steps)

    @property
    def recovered(self) -> bool:
        return self.steps[-1].normal

    @property
    def ok(self) -> bool:
        return not self.deaths and self.unanswered == 0 and self.recovered

    def verdict(self, timeout: float) -> list[str]:
        codes = Counter(answer.code for step in self.steps for answer in step.answers)
        shed = sum(step.shed for step in self.steps)
        last = self.steps[-1]
        return [
            "answers by code: " + ", ".join(f"{code} {count}" for code, count in codes.most_common()),
            f"shed load with 429/503: {'yes' if self.shed else 'no'} ({shed} answers)",
            f"unanswered (client timeouts of {timeout:g} s, connection errors): {self.unanswered} (must be 0)",
            f"crash (a service process died): {'yes: ' + ', '.join(self.deaths) if self.deaths else 'no'}",
            f"recovered (every answer normal at {last.clients} clients after the ramp): "
            f"{'yes' if self.recovered else 'no'}",
            f"verdict: {'PASS' if self.ok else 'FAIL'}",
        ]


def run(target: Target, plan: list[Action], ramp: list[int], recovery_clients: int, step_seconds: float,
        timeout: float, new_user: Callable[[], str], deaths: Callable[[], list[str]]) -> Report:
    """Each step of the ramp, then the recovery step, ``step_seconds`` each; prints a line per step."""
    print(HEADER, flush=True)
    steps = []
    for clients in [*ramp, recovery_clients]:
        steps.append(run_step(target, plan, clients, step_seconds, timeout, new_user))
        print(steps[-1].line(), flush=True)
    return Report(steps, deaths())


def run_step(target: Target, plan: list[Action], clients: int, seconds: float, timeout: float,
             new_user: Callable[[], str]) -> Step:
    """``clients`` threads working through ``plan`` back to back for ``seconds``."""
    answers: list[Answer] = []

    def act(action: Action) -> None:
        user_id = new_user() if action.kind == ENROL else action.user_id
        answer = send(target, action.kind, user_id, action.image, timeout)
        answers.append(answer)  # list.append is atomic
        if answer.code in SHED:
            time.sleep(min(answer.retry_after, BACKOFF_CAP))  # as a well-behaved client does

    return Step(clients, hammer(act, plan, clients, seconds, failures=()).seconds, answers)


def answers_at(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def own_stack(models: Path) -> Iterator[tuple[Target, Callable[[], list[str]]]]:
    """A stack of our own on free local ports and what tells whether any of its processes died."""
    with tempfile.TemporaryDirectory() as scratch:
        stack = Stack(models, Path(scratch))
        workers = {worker.pid for worker in stack.auth.workers()}

        def deaths() -> list[str]:
            processes = {"detector": stack.detector.process, "embedder": stack.embedder.process,
                         "auth": stack.auth.process}
            died = [name for name, process in processes.items() if process is None or process.poll() is not None]
            if "auth" not in died:
                now = {worker.pid for worker in stack.auth.workers()}
                died += [f"auth worker {pid}" for pid in sorted(workers - now)]
            return died

        try:
            yield Target(stack.url, stack.api_key), deaths
        finally:
            stack.stop()


@contextmanager
def running_stack(target: Target) -> Iterator[tuple[Target, Callable[[], list[str]]]]:
    """A stack someone else runs: its processes are out of sight, so a crash shows as /healthz not answering."""
    yield target, lambda: [] if answers_at(target.url) else [f"auth at {target.url} (/healthz does not answer)"]


def load_test(target: Target, deaths: Callable[[], list[str]], args: argparse.Namespace, *, tidy: bool) -> int:
    """Seed, ramp, recover, print the verdict; ``tidy`` deletes the users made on the way."""
    prefix = f"loadtest-{secrets.token_hex(4)}"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run (clients share the machine)",
          flush=True)
    people = people_by_photo_count(args.lfw)[:args.people + 1]
    seeded = seed(target, people, PHOTOS_PER_PERSON, prefix, args.timeout)
    print(f"enrolled {len(seeded.users) - 1} LFW people and an impostors' decoy from 640x480 photos; "
          f"{len(seeded.genuine)} photos log their user in; mix: 80 % genuine logins, 10 % impostors, 10 % new "
          f"users; {args.step_seconds:g} s per step; after a 429/503 a client waits Retry-After (at most "
          f"{BACKOFF_CAP:g} s); latency of every answer, and p99 of the shed ones", flush=True)
    counter = itertools.count()
    report = run(target, seeded.plan(random.Random(0)), args.clients, args.recovery_clients, args.step_seconds,
                 args.timeout, lambda: f"{prefix}-new-{next(counter)}", deaths)
    print(*report.verdict(args.timeout), sep="\n", flush=True)
    if tidy and not report.deaths:
        created = {a.user_id for step in report.steps for a in step.answers if a.kind == ENROL and a.status == 201}
        for user_id in [*seeded.users, *sorted(created)]:
            delete_user(target, user_id, args.timeout)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FACEAUTH_URL"),
                        help=f"the auth service (FACEAUTH_URL); default {DEFAULT_URL}, or a stack of our own")
    parser.add_argument("--api-key", default=os.environ.get("FACEAUTH_API_KEY"), help="FACEAUTH_API_KEY")
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64], help="the ramp")
    parser.add_argument("--recovery-clients", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, seconds")
    parser.add_argument("--people", type=int, default=4, help="people enrolled before the run")
    args = parser.parse_args(argv)

    url = args.url or DEFAULT_URL
    if args.url is None and not answers_at(url):
        print(f"nothing answers at {url}: starting a stack of our own (detector, embedder, auth under gunicorn, "
              "SQLite)", flush=True)
        with own_stack(args.models.resolve()) as (target, deaths):
            return load_test(target, deaths, args, tidy=False)
    if not answers_at(url):
        print(f"nothing answers at {url}", file=sys.stderr)
        return 2
    if not args.api_key:
        print("an API key is needed: --api-key or FACEAUTH_API_KEY", file=sys.stderr)
        return 2
    print(f"load-testing the running stack at {url}", flush=True)
    with running_stack(Target(url, args.api_key)) as (target, deaths):
        return load_test(target, deaths, args, tidy=True)


if __name__ == "__main__":
    sys.exit(main())
