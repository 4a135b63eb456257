"""The webcam demo page: off unless FACEAUTH_DEMO_ENABLED, and driven in headless Chromium.

The browser test runs the real stack and feeds Chromium's fake camera a y4m video made with ffmpeg
from an LFW photo; Chromium reads the video file once per browser, so each face gets a browser of its
own. Such a camera shows a still photo, which is what a printed-photo attack looks like to the
page: it enrols, but its login fails the liveness challenge the page answers. A passing login needs
a head that turns when asked: ``puppet_camera`` replaces the page's camera by one that shows, at
each step the page asks for, an LFW photo of one person facing the camera, turned to her left, or
that photo mirrored (turned to her right). Screenshots go to FACEAUTH_ARTIFACTS_DIR (default: the
test's temporary folder).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from faceauth_auth.api.demo import CONTENT_SECURITY_POLICY
from faceauth_auth.config import Settings
from faceauth_auth.db import Database
from faceauth_auth.repositories import applications
from facemodels.benchmark import on_canvas
from tests.auth_helpers import ALICE, BOB, Application, Photo, body, error_code, serving, upload

pytest_plugins = ["tests.auth_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 90  # seconds for the camera or one API call on a loaded 2-core machine; a bound, not a measurement
PAGE_ASSETS = ("/demo/", "/demo/demo.js", "/demo/demo.css")


@pytest.fixture(scope="module")
def demo_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(demo_enabled=True)


def test_the_demo_is_off_by_default(http: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEAUTH_DEMO_ENABLED", raising=False)
    assert not Settings.from_env().demo_enabled
    monkeypatch.setenv("FACEAUTH_DEMO_ENABLED", "1")
    assert Settings.from_env().demo_enabled
    for path in PAGE_ASSETS:
        response = http.get(path)
        assert (response.status_code, error_code(response)) == (404, "not_found"), path


def test_the_enabled_demo_serves_a_page_without_inline_code(demo_app: Flask) -> None:
    http = demo_app.test_client()
    assert http.get("/demo").status_code == 308  # to /demo/, where the relative asset and API links resolve
    page, script, style = (http.get(path) for path in PAGE_ASSETS)
    assert (page.status_code, page.mimetype) == (200, "text/html")
    assert (script.status_code, script.mimetype) in ((200, "text/javascript"), (200, "application/javascript"))
    assert (style.status_code, style.mimetype) == (200, "text/css")
    assert all(r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY for r in (page, script, style))
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="demo.js" defer>']
    assert "<style" not in html and " style=" not in html and not re.search(r"\son\w+=", html)
    assert http.get("/demo/index.html").status_code == 404  # only the named assets are served


@pytest.fixture(scope="module")
def demo_url(demo_app: Flask) -> Iterator[str]:
    with serving(demo_app) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FACEAUTH_ARTIFACTS_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def camera(tmp_path: Path, lfw: Path) -> Callable[[str, int], Path]:
    """Makes a one-frame y4m of LFW photo ``index`` of ``name`` enlarged onto 640x480 for the fake camera.

    LFW's 250 px photos would give a face smaller than a webcam's; the canvas is the benchmark's.
    """
    def video(name: str, index: int) -> Path:
        out = tmp_path / f"{name}_{index}.y4m"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-s", "640x480", "-i", "-", "-pix_fmt", "yuv420p", str(out)],
                       input=on_canvas(lfw / "images" / name / f"{name}_{index:04d}.jpg").tobytes(),
                       check=True, timeout=60)
        return out
    return video


def require_chromium() -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"{CHROMIUM} or {CHROMEDRIVER} missing: run scripts/ensure-chromium.sh (as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def chromium(video: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium whose camera shows ``video``; one browser per video, closed after the block."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=900,1900", "--use-fake-device-for-media-stream",
                     "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={video}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def open_demo(driver: WebDriver, demo_url: str, api_key: str, user_id: str) -> None:
    """Load the page, fill in the key and user id, and wait until the camera shows a picture."""
    driver.get(f"{demo_url}/demo/")
    driver.find_element(By.ID, "api-key").send_keys(api_key)
    user = driver.find_element(By.ID, "user-id")
    user.clear()
    user.send_keys(user_id)
    WebDriverWait(driver, WAIT).until(lambda d: outcome(d) == "ready")


def outcome(driver: WebDriver) -> str | None:
    return driver.find_element(By.ID, "result").get_attribute("data-outcome")


def press(driver: WebDriver, button: str) -> str:
    """Click ``button`` and wait for the API's answer; returns the status line shown."""
    driver.find_element(By.ID, button).click()
    WebDriverWait(driver, WAIT).until(lambda d: outcome(d) in ("success", "failure"))
    return driver.find_element(By.ID, "status").text


def screenshot(driver: WebDriver, artifacts: Path, name: str) -> None:
    path = artifacts / f"demo-{name}.png"
    assert driver.save_screenshot(str(path)), path
    print(f"demo screenshot: {path}")


def assert_no_policy_violation(driver: webdriver.Chrome) -> None:
    messages = [entry["message"] for entry in driver.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_enrol_and_log_in_from_the_browser_camera(
        camera: Callable[[str, int], Path], demo_url: str, application: Application, http: FlaskClient,
        artifacts: Path) -> None:
    require_chromium()
    api_key = application.headers["Authorization"].removeprefix("Bearer ")

    with chromium(camera(ALICE, 2)) as enrolling:
        open_demo(enrolling, demo_url, api_key, "alice")
        assert press(enrolling, "enrol").startswith("Enrolled a face for alice"), outcome(enrolling)
        assert len(body(http.get("/v1/users/alice/faces", headers=application.headers))["faces"]) == 1
        enrolling.refresh()  # the key stays in the tab's sessionStorage, and nowhere more lasting
        assert enrolling.find_element(By.ID, "api-key").get_attribute("value") == api_key
        assert enrolling.execute_script("return localStorage.length + document.cookie.length") == 0
        assert_no_policy_violation(enrolling)

    # The right person, but a still photo: every frame has the same yaw, so the head turns the
    # challenge asks for never happen, and the login is answered like a mismatch.
    with chromium(camera(ALICE, 3)) as still_photo:
        open_demo(still_photo, demo_url, api_key, "alice")
        status = press(still_photo, "login")
        assert outcome(still_photo) == "failure" and "HTTP 401 face_mismatch" in status, status
        assert not still_photo.find_element(By.ID, "token").is_displayed()
        screenshot(still_photo, artifacts, "still-photo")
        assert_no_policy_violation(still_photo)

    with chromium(camera(BOB, 1)) as someone_else:
        open_demo(someone_else, demo_url, api_key, "alice")
        status = press(someone_else, "login")
        assert outcome(someone_else) == "failure" and "HTTP 401 face_mismatch" in status, status
        assert not someone_else.find_element(By.ID, "token").is_displayed()
        screenshot(someone_else, artifacts, "mismatch")


PUPPET = "Maria_Shriver"  # photo 2 faces the camera (yaw ~0); photo 1 is turned to her left (~+39 degrees)


def _rgba(image: np.ndarray) -> dict[str, object]:
    """A 320x240 RGBA frame for the puppet camera, base64 (drawn with putImageData: no image load,
    which the page's img-src 'self' would refuse for a data: URL)."""
    small = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    rgba = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])
    return {"width": 320, "height": 240, "data": base64.b64encode(rgba.tobytes()).decode()}


PUPPET_SCRIPT = """
(() => {
  const poses = %s;
  const canvas = document.createElement("canvas");
  canvas.width = 320; canvas.height = 240;
  const context = canvas.getContext("2d");
  const frames = {};
  for (const [pose, frame] of Object.entries(poses)) {
    const bytes = Uint8ClampedArray.from(atob(frame.data), (c) => c.charCodeAt(0));
    frames[pose] = new ImageData(bytes, frame.width, frame.height);
  }
  const draw = () => {
    const prompt = document.getElementById("challenge");
    const pose = (prompt && prompt.dataset.pose) || "front";
    context.putImageData(frames[pose] || frames.front, 0, 0);
  };
  navigator.mediaDevices.getUserMedia = async () => {
    draw();
    setInterval(draw, 40);
    return canvas.captureStream(25);
  };
})();
"""


@pytest.fixture
def puppet_camera(lfw: Path) -> str:
    """A script replacing the page's camera by photos of PUPPET that follow the page's prompts."""
    turned = on_canvas(lfw / "images" / PUPPET / f"{PUPPET}_0001.jpg")
    front = on_canvas(lfw / "images" / PUPPET / f"{PUPPET}_0002.jpg")
    poses = {"front": _rgba(front), "left": _rgba(turned), "right": _rgba(np.ascontiguousarray(turned[:, ::-1]))}
    return PUPPET_SCRIPT % json.dumps(poses)


def test_a_head_that_turns_as_asked_passes_the_challenge(
        camera: Callable[[str, int], Path], demo_url: str, application: Application, http: FlaskClient,
        puppet_camera: str, auth_db: Database, photo: Photo, artifacts: Path) -> None:
    """What makes it pass: the frames the page takes at each step show the face turned that way
    (yaw beyond +-15 degrees by the landmarks), and every frame is the login photo's person."""
    require_chromium()
    api_key = application.headers["Authorization"].removeprefix("Bearer ")
    enrolled = http.post("/auth/face-register", headers=application.headers,
                         **upload("maria", photo(PUPPET, 4)))
    assert enrolled.status_code == 201
    with auth_db.transaction() as session:  # the strictest policy: a login needs an answered challenge
        assert applications.set_liveness_policy(session, application.name, "challenge")
    with chromium(camera(PUPPET, 2)) as browser:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": puppet_camera})
        open_demo(browser, demo_url, api_key, "maria")
        status = press(browser, "login")
        assert outcome(browser) == "success" and status.startswith("Logged in as maria"), status
        header = json.loads(browser.find_element(By.ID, "token-header").text)
        claims = json.loads(browser.find_element(By.ID, "token-claims").text)
        assert header["alg"] == "ES256" and header["kid"]
        assert (claims["sub"], claims["aud"], claims["amr"]) == ("maria", application.name, ["face"])
        assert "JWKS" in browser.find_element(By.ID, "token").text
        screenshot(browser, artifacts, "login")
        assert_no_policy_violation(browser)
