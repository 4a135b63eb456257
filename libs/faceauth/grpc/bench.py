"""``python -m faceauth.grpc.bench``: speed of the detector and embedder behind gRPC, on real photos.

Each service runs as its own process on 127.0.0.1, with dynamic batching on and then off; 1, 8 and
32 client threads call it in a loop for a few seconds each. Printed per run: throughput, latency
p50/p99 and the mean batch the server formed; then the cost of gRPC per call (client 1, batching
off) against the same work done by calling the models in this process. Needs the services
importable (``faceauth_detector``, ``faceauth_embedder``) and the converted models.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import grpc
import numpy as np

from faceauth.grpc import landmarks
from faceauth.grpc.client import DetectorClient, EmbedderClient
from faceauth.grpc.launch import ServiceProcess, scrape, total
from faceauth.images import decode_image
from faceauth.v1 import common_pb2
from faceauth_detector.pose import yaw_degrees
from faceauth_detector.sharpness import sharpness
from facemodels.benchmark import sample_photos
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.liveness import DEFAULT_MODEL as DEFAULT_LIVENESS_MODEL

T = TypeVar("T")

@dataclass(frozen=True)
class Photo:
    data: bytes
    landmarks: np.ndarray
    message: common_pb2.Landmarks


@dataclass(frozen=True)
class Workload:
    """One service and the call the clients repeat."""

    service: str
    module: str
    unit: str
    connect: Callable[[str], Callable[[Photo], object]]  # target -> one call
    direct: Callable[[Photo], object]  # the same work without gRPC


@dataclass(frozen=True)
class Run:
    latencies: list[float]  # seconds
    seconds: float
    errors: int

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


def load_photos(lfw: Path, detector: FaceDetector, count: int) -> list[Photo]:
    """640x480 JPEG photos with one face each (the targets' photo size), as the model benchmark uses."""
    photos = []
    for image in sample_photos(lfw, count):
        face = detector.detect(image)[0]
        data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        photos.append(Photo(data, face.landmarks, landmarks.to_message(face.landmarks)))
    return photos


def hammer(call: Callable[[T], object], photos: Sequence[T], clients: int, seconds: float,
           failures: tuple[type[BaseException], ...] = (grpc.RpcError,)) -> Run:
    """``clients`` threads make calls back to back for ``seconds``, each on the next photo; all latencies kept."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        for n in itertools.count(index, clients):
            if time.perf_counter() >= stop_at:
                break
            started = time.perf_counter()
            try:
                call(photos[n % len(photos)])
            except failures:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Run(latencies, time.perf_counter() - started, errors[0])


def median_ms(action: Callable[[Photo], object], photos: list[Photo], seconds: float) -> float:
    """Median time of ``action`` on photo after photo for ``seconds``, after a few warm-up runs."""
    for photo in photos[:3]:
        action(photo)
    samples = []
    stop_at = time.perf_counter() + seconds
    for photo in itertools.cycle(photos):
        if time.perf_counter() >= stop_at:
            break
        started = time.perf_counter()
        action(photo)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def detect_calls(target: str) -> Callable[[Photo], object]:
    client = DetectorClient(target, timeout=30)
    return lambda photo: client.detect(photo.data)


def embed_calls(target: str) -> Callable[[Photo], object]:
    client = EmbedderClient(target, timeout=30)
    return lambda photo: client.embed(photo.data, photo.message)


def workloads(detector: FaceDetector, embedder: FaceEmbedder) -> list[Workload]:
    def direct_detect(photo: Photo) -> object:
        """What the detector service computes per photo: faces, then each face's sharpness and pose."""
        image = decode_image(photo.data)
        return [(face, sharpness(image, face.box), yaw_degrees(face.landmarks)) for face in detector.detect(image)]

    def direct_embed(photo: Photo) -> object:
        return embedder.embed(decode_image(photo.data), [photo.landmarks])

    return [Workload("detector", "faceauth_detector", "photos/s", detect_calls, direct_detect),
            Workload("embedder", "faceauth_embedder", "faces/s", embed_calls, direct_embed)]


def bench_service(work: Workload, photos: list[Photo], models: Path, concurrency: list[int],
                  seconds: float) -> dict[str, float]:
    """Print one line per (batching, clients); return p50 in ms per batching mode at one client."""
    single_client_p50 = {}
    for batching in ("on", "off"):
        env = {"FACEAUTH_MODEL_DIR": str(models), "FACEAUTH_BATCHING": batching}
        with ServiceProcess(work.module, env) as service:
            call = work.connect(service.target)
            for clients in concurrency:
                before = scrape(service.metrics_port)
                run = hammer(call, photos, clients, seconds)
                after = scrape(service.metrics_port)
                batches = total(after, "faceauth_batch_size_count") - total(before, "faceauth_batch_size_count")
                items = total(after, "faceauth_batch_size_sum") - total(before, "faceauth_batch_size_sum")
                print(f"{work.service:<9} {batching:<8} {clients:>7} {run.throughput:>9.1f} {work.unit:<9}"
                      f"{run.percentile_ms(50):>8.1f} {run.percentile_ms(99):>8.1f} "
                      f"{items / max(batches, 1):>10.2f} {run.errors:>6}", flush=True)
                if clients == 1:
                    single_client_p50[batching] = run.percentile_ms(50)
    return single_client_p50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--services", nargs="+", choices=["detector", "embedder"], default=["detector", "embedder"])
    args = parser.parse_args(argv)
    models = args.models.resolve()

    # The service's defaults: a liveness model scores every face.
    detector = FaceDetector.load(models, liveness_model=DEFAULT_LIVENESS_MODEL)
    embedder = FaceEmbedder.load(models)
    photos = load_photos(args.lfw, detector, 32)
    # Clients share the machine with the server; other work on it shows in the figures.
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the runs", flush=True)
    print(f"{'service':<9} {'batching':<8} {'clients':>7} {'throughput':>19} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'mean batch':>10} {'errors':>6}", flush=True)
    overhead = []
    for work in [work for work in workloads(detector, embedder) if work.service in args.services]:
        grpc_p50 = bench_service(work, photos, models, args.concurrency, args.seconds)
        direct = median_ms(work.direct, photos, args.seconds / 2)
        if "off" in grpc_p50:
            overhead.append(f"{work.service}: {grpc_p50['off'] - direct:.2f} ms per call "
                            f"(p50 {grpc_p50['off']:.2f} ms via gRPC, batching off, 1 client; "
                            f"{direct:.2f} ms calling the models directly, decode included)")
    print("gRPC overhead:", *overhead, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
