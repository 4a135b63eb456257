"""``python -m faceauth_auth.bench``: face-login through the whole stack on localhost.

Starts the detector, the embedder and auth (gunicorn, as production runs it) on free local ports
with a throw-away SQLite database, enrols one LFW person from one 640x480 photo, then logs in with
their other photos from 1 and 8 concurrent clients. Prints throughput, p50/p99, the CPU time each
process spent per login (where the two cores go) and the RSS of each auth worker. Traffic stays
on 127.0.0.1 and every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import psutil

from faceauth.grpc.bench import hammer
from faceauth.grpc.launch import ServiceProcess
from faceauth_auth.launch import AuthProcess
from facemodels.benchmark import on_canvas


def jpeg(path: Path) -> bytes:
    return cv2.imencode(".jpg", on_canvas(path)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def people_by_photo_count(lfw: Path) -> list[Path]:
    """LFW's folders of people, the most photographed first."""
    return sorted((lfw / "images").iterdir(), key=lambda p: len(list(p.glob("*.jpg"))), reverse=True)


def most_photographed(lfw: Path) -> list[Path]:
    return sorted(people_by_photo_count(lfw)[0].glob("*.jpg"))


def face_request(url: str, api_key: str, path: str, user_id: str, image: bytes) -> urllib.request.Request:
    """A JSON photo upload (``{"user_id", "image": base64}``) to ``path`` of the auth service at ``url``."""
    body = json.dumps({"user_id": user_id, "image": base64.b64encode(image).decode()}).encode()
    return urllib.request.Request(f"{url}{path}", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})


class Stack:
    """The three services on 127.0.0.1; auth under gunicorn with its default two workers."""

    def __init__(self, models: Path, scratch: Path) -> None:
        env = {"FACEAUTH_MODEL_DIR": str(models)}
        self.detector = ServiceProcess("faceauth_detector", env).start()
        self.embedder = ServiceProcess("faceauth_embedder", env).start()
        self.api_key = "fa_bench_" + secrets.token_urlsafe(32)
        jwt_dir = scratch / "jwt"
        template_key, pepper = scratch / "template.key", scratch / "api-key-pepper"
        for command in (["generate-jwt", "--out", str(jwt_dir)], ["generate-template-key", "--out", str(template_key)],
                        ["generate-api-key-pepper", "--out", str(pepper)]):
            subprocess.run([sys.executable, "-m", "faceauth_auth", "keys", *command], check=True, capture_output=True)
        (scratch / "metrics").mkdir()
        self.auth = AuthProcess({
            "FACEAUTH_DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
            "FACEAUTH_DETECTOR_TARGET": f"dns:///{self.detector.target}",
            "FACEAUTH_EMBEDDER_TARGET": f"dns:///{self.embedder.target}",
            "FACEAUTH_JWT_CURRENT_KEY_FILE": str(jwt_dir / "current.pem"),
            "FACEAUTH_JWT_NEXT_KEY_FILE": str(jwt_dir / "next.pem"),
            "FACEAUTH_TEMPLATE_KEY_FILE": str(template_key),
            "FACEAUTH_API_KEY_PEPPER_FILE": str(pepper),
            "FACEAUTH_BOOTSTRAP_API_KEY": self.api_key,
            "FACEAUTH_RATE_LIMIT": "1000000 per minute", "FACEAUTH_LOCKOUT_MAX_FAILURES": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics")})
        try:
            self.auth.start()
        except BaseException:
            self.stop()
            raise
        self.url = self.auth.url

    def post(self, path: str, user_id: str, image: bytes) -> dict[str, object]:
        with urllib.request.urlopen(face_request(self.url, self.api_key, path, user_id, image), timeout=30) as response:
            return dict(json.loads(response.read()))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each service, and by this process's client threads."""
        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        return {"detector": used(psutil.Process(self.detector.pid)),
                "embedder": used(psutil.Process(self.embedder.pid)),
                "auth": used(psutil.Process(self.auth.pid)) + sum(used(worker) for worker in self.auth.workers()),
                "clients": used(psutil.Process())}

    def worker_rss_mib(self) -> list[float]:
        return [worker.memory_info().rss / 2**20 for worker in self.auth.workers()]

    def stop(self) -> None:
        self.auth.stop()
        self.detector.stop()
        self.embedder.stop()


def succeeds(stack: Stack, image: bytes) -> bool:
    try:
        stack.post("/auth/face-login", "bench-user", image)
    except urllib.error.HTTPError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)

    paths = most_photographed(args.lfw)
    enrol, logins = jpeg(paths[0]), [jpeg(p) for p in paths[1:33]]
    with tempfile.TemporaryDirectory() as scratch:
        stack = Stack(args.models, Path(scratch))
        try:
            stack.post("/auth/face-register", "bench-user", enrol)
            usable = [image for image in logins if succeeds(stack, image)]  # also warms up
            print(f"face-login, 640x480 JPEG photos of {paths[0].parent.name}: {len(usable)} of {len(logins)} "
                  "log in (the others show several faces or do not match) and are replayed")
            print(f"{'clients':>7} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}   CPU ms per login")
            for clients in (1, 8):
                before = stack.cpu_seconds()
                run = hammer(lambda image: stack.post("/auth/face-login", "bench-user", image), usable, clients,
                             args.seconds, failures=(urllib.error.URLError,))
                done = max(1, len(run.latencies))
                cpu = ", ".join(f"{name} {(seconds - before[name]) * 1000 / done:.1f}"
                                for name, seconds in stack.cpu_seconds().items())
                print(f"{clients:>7} {run.throughput:>9.1f} {run.percentile_ms(50):>8.1f} "
                      f"{run.percentile_ms(99):>8.1f} {run.errors:>7}   {cpu}")
            print("auth worker RSS MiB: " + ", ".join(f"{rss:.0f}" for rss in stack.worker_rss_mib()))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
