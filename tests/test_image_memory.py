"""Decompression by memory: floods of large photos against the real detector process.

A single-colour PNG of 7000x5700 pixels is 130 KB on the wire and 114 MiB decoded (about twice that
while OpenCV decodes it). Sent 32 times at once it took the detector from 0.9 GB to 7.3 GB of
peak memory (VmHWM) before the pixel cap came down from 40 Mpx to 12 Mpx and decodes were counted
against a budget (faceauth.images); in a pod limited to 2 GiB, 15 of them were an OOM kill. Now
every such call is refused from the header, and a flood of photos just under the cap is held to the
decode budget: some are answered, the rest get RESOURCE_EXHAUSTED, and the same process goes on
serving real photos.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeAlias

import cv2
import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from faceauth.grpc.client import DetectorClient
from faceauth.grpc.launch import ServiceProcess, health_status
from faceauth.grpc.status import ERROR_CODE_KEY
from faceauth.v1 import detector_pb2

FLOOD = 32
CAP_WIDTH, CAP_HEIGHT = 4096, 3072  # exactly the cap, 12 Mpx
# How far the detector's peak memory (VmHWM) may grow during both floods: the decode budget
# (faceauth.images.DECODE_BUDGET, 512 MiB) and a margin. Measured on the 2-core development machine:
# +7 MiB for the 7000x5700 flood (refused from the header) and +270-350 MiB for the flood at the cap
# (decodes reserve 2.5 times their pixels, a peak they do not all reach at once); with the old 40 Mpx
# cap and no budget, the first flood alone took it from 0.9 GB to 7.3 GB.
GROWTH_BOUND_MIB = 512 + 128

Outcome: TypeAlias = detector_pb2.DetectResponse | grpc.RpcError


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def single_colour_png(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((height, width, 3), (200, 120, 40), np.uint8))
    assert ok
    return encoded.tobytes()


def flood(call: Callable[[], detector_pb2.DetectResponse], count: int) -> list[Outcome]:
    """``count`` calls released at once, each in its own thread; answers or errors."""
    start = threading.Barrier(count)

    def run(_: int) -> Outcome:
        start.wait()
        try:
            return call()
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def error_code(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(ERROR_CODE_KEY)


def test_large_image_floods_get_clean_errors_within_a_memory_bound(tmp_path: Path, model_dir: Path,
                                                                   lfw: Path) -> None:
    bomb = single_colour_png(7000, 5700)
    at_cap = single_colour_png(CAP_WIDTH, CAP_HEIGHT)
    assert len(bomb) < 200_000
    face = (lfw / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes()
    env = {"FACEAUTH_MODEL_DIR": str(model_dir)}
    with (tmp_path / "detector.log").open("wb") as log, ServiceProcess("faceauth_detector", env, log) as service:
        pid = service.pid
        client = DetectorClient(service.target, timeout=30)
        assert len(client.detect(face).faces) == 1
        idle = peak_rss_mib(pid)

        refused = flood(lambda: client.detect(bomb), FLOOD)
        after_bombs = peak_rss_mib(pid)
        print(f"\ndetector peak memory: idle {idle:.0f} MiB, after {FLOOD} 7000x5700 PNGs {after_bombs:.0f} MiB")
        assert after_bombs - idle < GROWTH_BOUND_MIB
        for outcome in refused:
            assert isinstance(outcome, grpc.RpcError), "a 40 Mpx photo was decoded"
            assert outcome.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
            if outcome.code() == grpc.StatusCode.INVALID_ARGUMENT:
                assert error_code(outcome) == "image_too_large"

        answered = flood(lambda: client.detect(at_cap), FLOOD)
        served = [outcome for outcome in answered if isinstance(outcome, detector_pb2.DetectResponse)]
        after_flood = peak_rss_mib(pid)
        print(f"detector peak memory after {FLOOD} {CAP_WIDTH}x{CAP_HEIGHT} PNGs {after_flood:.0f} MiB "
              f"({len(served)} answered, {FLOOD - len(served)} refused)")
        assert after_flood - idle < GROWTH_BOUND_MIB
        for outcome in answered:
            if isinstance(outcome, grpc.RpcError):
                assert outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, outcome
                assert "decoded" in outcome.details()
        assert served, "no photo at the cap was decoded"
        assert {(r.image_width, r.image_height, len(r.faces)) for r in served} == {(CAP_WIDTH, CAP_HEIGHT, 0)}

        # The same process, still serving: a real face, and photos at the cap one after the other
        # (the budget was given back when the flood's photos were freed).
        assert service.process is not None and service.process.poll() is None and service.pid == pid
        assert health_status(service.target) == health_pb2.HealthCheckResponse.SERVING
        assert len(client.detect(face).faces) == 1
        for _ in range(3):
            assert client.detect(at_cap).image_width == CAP_WIDTH
