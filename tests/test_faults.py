"""Faults on a running stack: auth under gunicorn as production runs it, real detector and embedder, real Postgres.

The embedder dies during a login load, Postgres restarts during enrolments, the connection pool
runs dry, slow clients trickle their uploads. Every answer must be a success or a clean JSON 503
within a bounded time, nothing may be half-stored, and the service must recover by itself. Each
test prints its figures (run with -s); docs/security.md ("Faults") records them.
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pgserver
import psutil
import pytest
import sqlalchemy as sa

from faceauth_auth import templatecrypto
from faceauth_auth.config import Settings
from faceauth_auth.errors import database_unavailable
from faceauth_auth.launch import AuthProcess
from tests.auth_helpers import (
    ALICE,
    BOB,
    CAROL,
    ModelServices,
    Photo,
    gunicorn_env,
    http_upload,
    own_pgserver,
    sqlalchemy_url,
    template_rows,
)

pytest_plugins = ["tests.auth_fixtures"]

API_KEY = "fa_faults_" + uuid.uuid4().hex * 2
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
GRPC_TIMEOUT = 2.0  # FACEAUTH_GRPC_TIMEOUT's default: what production runs with
POOL_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 3.0
THREADS = 4  # of the worker whose pool is exhausted
THREADS_DEFAULT = 16  # FACEAUTH_THREADS' default
MAX_INFLIGHT = Settings.max_inflight  # FACEAUTH_MAX_INFLIGHT's default
MARGIN = 5.0  # seconds on top of a configured bound, for a loaded 2-core machine
ONE_FACE = [(ALICE, i) for i in (2, 3, 4, 5, 6)] + [(BOB, i) for i in (1, 2, 3, 5, 6)] + \
           [(CAROL, i) for i in (1, 3, 4, 5, 6)]


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange as a client saw it; status 0 when no HTTP answer came at all."""

    user_id: str
    started: float  # time.monotonic()
    seconds: float
    status: int
    body: dict[str, Any]
    retry_after: str | None

    @property
    def ended(self) -> float:
        return self.started + self.seconds

    @property
    def error(self) -> str | None:
        error = self.body.get("error")
        return str(error["code"]) if isinstance(error, dict) else None


def ask(request: urllib.request.Request, user_id: str = "", timeout: float = 30.0) -> Answer:
    """Send ``request``; an answer that is not JSON fails the test that reads it (every error must be JSON)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, retry_after = response.status, response.read(), response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        status, raw, retry_after = error.code, error.read(), error.headers.get("Retry-After")
    except OSError as error:  # refused, reset, timed out
        return Answer(user_id, started, time.monotonic() - started, 0, {"exception": repr(error)}, None)
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"not_json": raw[:200].decode(errors="replace")}
    return Answer(user_id, started, time.monotonic() - started, status, body, retry_after)


class Load:
    """``clients`` threads sending ``send(client, n)`` back to back until the block ends; keeps every answer."""

    def __init__(self, clients: int, send: Callable[[int, int], Answer]) -> None:
        self._send = send
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._threads = [threading.Thread(target=self._run, args=(client,), daemon=True) for client in range(clients)]

    def _run(self, client: int) -> None:
        n = 0
        while not self._stop.is_set():
            answer = self._send(client, n)
            with self._lock:
                self.answers.append(answer)
            n += 1

    def first(self, wanted: Callable[[Answer], bool], since: float, timeout: float) -> Answer:
        """The first answer to a request sent after ``since`` that is ``wanted``, waiting up to ``timeout`` s."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            with self._lock:
                found = [a for a in self.answers if a.started >= since and wanted(a)]
            if found:
                return min(found, key=lambda a: a.ended)
            time.sleep(0.05)
        raise AssertionError(f"no such answer within {timeout:g} s; last: {self.answers[-3:]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def figures(fault: str, **measured: object) -> None:
    print(f"\nfault: {fault}: " + ", ".join(f"{name}={value}" for name, value in measured.items()))


@pytest.fixture(scope="module")
def stack_env(model_services: ModelServices, jwt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What every gunicorn stack of this module shares: the model servers, keys, and a high rate limit."""
    template_key = tmp_path_factory.mktemp("faults") / "template.key"
    templatecrypto.generate_key_file(template_key)
    pepper = template_key.parent / "api-key-pepper"
    templatecrypto.generate_key_file(pepper)
    # The load is the test's, not an abuse: a high rate limit.
    return gunicorn_env(model_services, jwt_dir, template_key, pepper, BOOTSTRAP_API_KEY=API_KEY,
                        RATE_LIMIT="100000 per minute")


@contextmanager
def gunicorn(env: dict[str, str], scratch: Path, **settings: str) -> Iterator[AuthProcess]:
    """auth under gunicorn with ``settings`` (FACEAUTH_* names without the prefix); its log in ``scratch``."""
    (scratch / "metrics").mkdir()
    overrides = {f"FACEAUTH_{name.upper()}": value for name, value in settings.items()}
    with (scratch / "gunicorn.log").open("wb") as log, \
            AuthProcess({**env, "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"), **overrides}, log) as auth:
        yield auth


@pytest.fixture(scope="module")
def auth(stack_env: dict[str, str], auth_database_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    """Production settings: two workers of four threads on the real Postgres."""
    with gunicorn(stack_env, tmp_path_factory.mktemp("auth"), database_url=auth_database_url,
                  grpc_timeout=str(GRPC_TIMEOUT)) as process:
        yield process


@pytest.fixture(scope="module")
def small_auth(stack_env: dict[str, str], auth_database_url: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    """One worker of four threads sharing one database connection: easy to exhaust, on purpose."""
    with gunicorn(stack_env, tmp_path_factory.mktemp("small"), database_url=auth_database_url, workers="1",
                  threads=str(THREADS), db_pool_size="1", db_pool_timeout=str(POOL_TIMEOUT),
                  db_statement_timeout=str(STATEMENT_TIMEOUT)) as process:
        yield process


@pytest.fixture(scope="module")
def single_worker_auth(stack_env: dict[str, str], auth_database_url: str,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    """Production settings but one worker, so that every connection reaches the same threads and slots."""
    with gunicorn(stack_env, tmp_path_factory.mktemp("single"), database_url=auth_database_url,
                  workers="1") as process:
        yield process


class OwnPostgres:
    """A Postgres server of this module's own (PyPI pgserver), which it may stop and start at will."""

    def __init__(self, server: pgserver.PostgresServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return sqlalchemy_url(self.server)

    def shut_down(self, mode: str) -> None:
        """Postgres' own shutdown signals: SIGINT is a fast shutdown, SIGQUIT an immediate one (no checkpoint)."""
        postmaster = psutil.Process(self.server.get_pid())
        postmaster.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        postmaster.wait(30)

    def start(self) -> None:
        """The same server again: same data directory, same socket."""
        self.server.ensure_postgres_running()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    with own_pgserver("faults") as server:
        yield OwnPostgres(server)


@pytest.fixture(scope="module")
def restartable_auth(stack_env: dict[str, str], own_postgres: OwnPostgres,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    with gunicorn(stack_env, tmp_path_factory.mktemp("restartable"), database_url=own_postgres.url) as process:
        yield process


def test_embedder_killed_during_a_login_load(auth: AuthProcess, model_services: ModelServices, photo: Photo) -> None:
    """Four clients log in back to back; the embedder is SIGKILLed, then started again on the same port."""
    assert ask(http_upload(f"{auth.url}/auth/face-register", HEADERS, "alice-k", photo(ALICE, 2))).status == 201
    login_photo = photo(ALICE, 3)
    embedder = model_services.embedder
    assert embedder.process is not None

    def login(_client: int, _n: int) -> Answer:
        return ask(http_upload(f"{auth.url}/auth/face-login", HEADERS, "alice-k", login_photo))

    with Load(4, login) as load:
        load.first(lambda a: a.status == 200, time.monotonic(), 60)
        killed = time.monotonic()
        embedder.process.kill()  # a crash, not a graceful shutdown
        embedder.process.wait(10)
        try:
            first_503 = load.first(lambda a: a.status == 503, killed, 30)
            time.sleep(2)  # the outage lasts while the embedder loads its model again
        finally:
            restarting = time.monotonic()  # from here the embedder may answer again before start() returns
            embedder.start()  # same port
        back = time.monotonic()
        first_200 = load.first(lambda a: a.status == 200, back, 60)
    answers = load.answers

    bound = 2 * GRPC_TIMEOUT + MARGIN  # a detector and an embedder call, each bounded by the gRPC timeout
    assert {a.status for a in answers} <= {200, 503}, [a for a in answers if a.status not in (200, 503)]
    assert max(a.seconds for a in answers) < bound
    during = [a for a in answers if a.started >= killed and a.ended <= restarting]
    assert during
    unexpected = [a for a in during if (a.status, a.error, a.retry_after) != (503, "service_unavailable", "1")]
    assert not unexpected, unexpected
    figures("embedder killed", logins=len(answers), ok=sum(a.status == 200 for a in answers),
            refused_503=sum(a.status == 503 for a in answers), outage_s=round(back - killed, 1),
            first_503_after_kill_s=round(first_503.ended - killed, 2),
            median_503_s=round(statistics.median(a.seconds for a in during), 2),
            max_answer_s=round(max(a.seconds for a in answers), 2),
            recovered_after_restart_s=round(first_200.ended - back, 2), errors_500=0)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restarted_during_enrolments(mode: str, restartable_auth: AuthProcess, own_postgres: OwnPostgres,
                                              photo: Photo) -> None:
    """Four clients enrol faces back to back; Postgres shuts down (fast or immediate) and starts again.

    Each user gets at most five faces, so 409 too_many_faces never mixes in.
    """
    photos = [photo(person, index) for person, index in ONE_FACE]

    def enrol(client: int, n: int) -> Answer:
        user = f"{mode}-{client}-{n // 5}"
        image = photos[(client * 5 + n) % len(photos)]
        return ask(http_upload(f"{restartable_auth.url}/auth/face-register", HEADERS, user, image), user)

    with Load(4, enrol) as load:
        load.first(lambda a: a.status == 201, time.monotonic(), 60)
        time.sleep(1)  # every client is busy enrolling
        stopped = time.monotonic()
        own_postgres.shut_down(mode)
        first_503 = load.first(lambda a: a.status == 503, stopped, 30)
        time.sleep(1)
        own_postgres.start()
        back = time.monotonic()
        first_201 = load.first(lambda a: a.status == 201, back, 60)
        time.sleep(2)
    answers = load.answers

    assert {a.status for a in answers} <= {201, 503}, [a for a in answers if a.status not in (201, 503)]
    refused = [a for a in answers if a.status == 503]
    assert all(a.error == "database_unavailable" and a.retry_after == "1" for a in refused)
    assert max(a.seconds for a in answers) < 2 * GRPC_TIMEOUT + MARGIN
    accepted = [a for a in answers if a.status == 201]
    assert template_rows(own_postgres.url, [str(a.body["face_id"]) for a in accepted]) == len(accepted)
    stored, audited = _stored_per_user(own_postgres.url, f"{mode}-")
    assert 0 not in stored.values(), "a user row without its face: half-written"
    assert audited == stored, "every stored face has its enrolment audit event, and no other has one"
    # A 503 whose COMMIT reached the server just before it went down may have been stored all the
    # same (the client cannot know); only those in flight at the shutdown could be such.
    in_flight = [a for a in refused if a.started < stopped < a.ended]
    ambiguous = 0
    for user in {a.user_id for a in answers}:
        expected = sum(a.user_id == user for a in accepted)
        extra = stored.get(user, 0) - expected
        assert 0 <= extra <= sum(a.user_id == user for a in in_flight), (user, stored.get(user), expected)
        ambiguous += extra
    figures(f"postgres {mode} restart", enrolments=len(answers), stored_201=len(accepted), refused_503=len(refused),
            records_lost=0, half_written=0, stored_despite_503=ambiguous,
            first_503_after_stop_s=round(first_503.ended - stopped, 2), down_s=round(back - stopped, 1),
            first_201_after_start_s=round(first_201.ended - back, 2))


@pytest.mark.parametrize(("error", "unavailable"), [
    (sa.exc.OperationalError("select 1", None, Exception("connection refused")), True),
    (sa.exc.DatabaseError("COMMIT", None, Exception("server closed the connection unexpectedly"),
                          connection_invalidated=True), True),  # what psycopg2 raises when COMMIT loses the server
    (sa.exc.TimeoutError("QueuePool limit reached"), True),
    (sa.exc.IntegrityError("insert", None, Exception("duplicate key")), False),  # a bug: 500
])
def test_which_database_errors_are_unavailability(error: sa.exc.SQLAlchemyError, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable


def _stored_per_user(url: str, prefix: str) -> tuple[dict[str, int], dict[str, int]]:
    """Faces (users without any count as 0) and enrolment audit events per user id starting with ``prefix``."""
    faces = sa.text("select u.external_id, count(t.id) from users u left join face_templates t on t.user_id = u.id "
                    "where u.external_id like :prefix group by u.external_id")
    events = sa.text("select external_user_id, count(*) from audit_events where event = 'enrolment' "
                     "and external_user_id like :prefix group by external_user_id")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        counts = [{str(user): int(count) for user, count in connection.execute(query, {"prefix": prefix + "%"})}
                  for query in (faces, events)]
    engine.dispose()
    return counts[0], counts[1]


def test_exhausted_pool_gives_503_not_a_hang(small_auth: AuthProcess, auth_database_url: str) -> None:
    """The one pooled connection is stuck behind a table lock: every request still gets a bounded 503."""
    url = f"{small_auth.url}/v1/users/nobody"
    locker = sa.create_engine(auth_database_url)
    try:
        with locker.connect() as connection:
            connection.execute(sa.text("lock table api_keys in access exclusive mode"))  # until the rollback
            with ThreadPoolExecutor(THREADS) as pool:
                answers = list(pool.map(lambda _: ask(urllib.request.Request(url, headers=HEADERS)), range(THREADS)))
            connection.rollback()
        after = ask(urllib.request.Request(url, headers=HEADERS))
    finally:
        locker.dispose()

    assert all(a.status == 503 and a.error == "database_unavailable" and a.retry_after == "1" for a in answers), answers
    times = sorted(a.seconds for a in answers)
    assert times[-1] < STATEMENT_TIMEOUT + MARGIN  # the request holding the connection: statement_timeout
    assert times[0] < POOL_TIMEOUT + MARGIN  # those waiting for it: pool_timeout
    assert after.status == 404 and after.error == "user_not_found"
    figures("pool exhausted", requests=len(answers), refused_503=len(answers),
            waits_s=[round(t, 2) for t in times], next_request=after.status, next_request_s=round(after.seconds, 2))


@contextmanager
def slow_clients(url: str, count: int, request: bytes, fast: int) -> Iterator[None]:
    """``count`` connections sending ``request``: its first ``fast`` bytes at once, then a byte every 100 ms."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]
    for client in sockets:
        client.sendall(request[:fast])
    stop = threading.Event()

    def trickle() -> None:
        for position in range(fast, len(request)):
            for client in sockets:
                client.sendall(request[position:position + 1])
            if stop.wait(0.1):
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    time.sleep(1)  # every slow request is now in the server, being read
    try:
        yield
    finally:
        stop.set()
        sender.join(5)
        for client in sockets:
            client.close()


def raw_upload(url: str, path: str, user_id: str, image: bytes) -> tuple[bytes, int]:
    """An HTTP/1.1 multipart face upload as bytes on the wire, and where its body starts."""
    upload = http_upload(f"{url}{path}", HEADERS, user_id, image)
    data = upload.data
    assert isinstance(data, bytes)
    head = (f"POST {path} HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\nContent-Length: {len(data)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in upload.header_items()) + "\r\n").encode()
    return head + data, len(head)


def test_slow_clients_and_what_the_service_guarantees(single_worker_auth: AuthProcess, photo: Photo) -> None:
    """Clients trickling a request a byte per 100 ms, against one worker with production's threads and slots.

    A slow upload to a face endpoint holds an admission slot (and a thread) while its body arrives:
    with fewer of them than FACEAUTH_MAX_INFLIGHT, logins are answered as usual; with as many, face
    requests are refused at once with 503 overloaded while everything else still answers. Requests
    whose headers trickle hold a thread each: as many as FACEAUTH_THREADS and the worker answers
    nothing until they go. Hence the buffering proxy in front (docs/security.md, "Faults").
    """
    url = single_worker_auth.url
    assert ask(http_upload(f"{url}/auth/face-register", HEADERS, "alice-s", photo(ALICE, 2))).status == 201

    def login() -> Answer:
        return ask(http_upload(f"{url}/auth/face-login", HEADERS, "alice-s", photo(ALICE, 3)), timeout=5)

    def healthz() -> Answer:
        return ask(urllib.request.Request(f"{url}/healthz"), timeout=5)

    slow_login, body_starts = raw_upload(url, "/auth/face-login", "alice-s", photo(ALICE, 4))
    baseline = [login() for _ in range(3)]
    with slow_clients(url, MAX_INFLIGHT - 1, slow_login, fast=body_starts):
        beside_slow = [login() for _ in range(3)]
    with slow_clients(url, MAX_INFLIGHT, slow_login, fast=body_starts):
        shed, health_while_shed = login(), healthz()
    with slow_clients(url, THREADS_DEFAULT, slow_login, fast=0):
        starved = healthz()
    released = login()

    assert all(a.status == 200 for a in baseline + beside_slow + [released]), baseline + beside_slow + [released]
    assert max(a.seconds for a in beside_slow) < MARGIN  # answered, not queued behind the slow uploads
    assert shed.status == 503 and shed.error == "overloaded" and shed.seconds < MARGIN
    assert health_while_shed.status == 200
    assert starved.status == 0  # every thread reads a trickling request: not answered within the client's 5 s
    figures("slow clients", baseline_login_s=round(statistics.median(a.seconds for a in baseline), 2),
            login_beside_slow_uploads_max_s=round(max(a.seconds for a in beside_slow), 2),
            login_at_slot_limit=f"{shed.status} {shed.error} in {shed.seconds:.2f} s",
            healthz_at_slot_limit_s=round(health_while_shed.seconds, 2),
            healthz_with_slow_headers_on_every_thread="no answer in 5 s", login_after_s=round(released.seconds, 2))
