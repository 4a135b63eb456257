"""Every PromQL expression the chart ships, evaluated by a real Prometheus scraping the real services.

The detector, embedder and auth (gunicorn) run as local processes configured with the environment the
chart renders (the CPU variant), after the migration Job's command has run, and with the JWT keys and
API key of the Secrets the chart generates; the rate limits' Redis runs with the chart's arguments and
generated password, and auth reaches it with the URI of the chart's Secret. A Prometheus server
(Debian package `prometheus`) scrapes them every 2 seconds with the labels a ServiceMonitor gives (job
= the service, namespace, pod), plus a stand-in for kube-state-metrics' HPA series, and loads the
chart's alert rules. While real requests go through (enrolment, successful and failed face logins,
photos without a face, a corrupt photo), every query of the Grafana dashboards, every alert expression
and every prometheus-adapter rule is evaluated through the HTTP API: all must evaluate without error,
and the core panels must return data.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from faceauth.grpc.launch import ServiceProcess, free_port
from faceauth_auth.launch import AuthProcess
from tests.auth_helpers import redis_server
from tests.helm.support import (
    NAMESPACE,
    RELEASE,
    Manifest,
    adapter_rules,
    alert_rules,
    component_name,
    container,
    dashboard_queries,
    dashboards,
    named,
    render,
    tool,
)

# The chart's CPU variant; small batches keep the model warm-up short.
SETTINGS = ("gpu.enabled=false", "auth.bootstrapApiKey.enabled=true", "detector.batching.maxBatchSize=4",
            "embedder.batching.maxBatchSize=4")
PODS = {component: f"{component_name(component)}-0" for component in ("detector", "embedder", "auth")}
# Dashboard variables as Grafana would fill them in.
DASHBOARD_VARIABLES = {"$__rate_interval": "1m", "$namespace": NAMESPACE, "$job": "detector|embedder"}
# Panels that must show data while the services answer requests: traffic, latency, login outcomes,
# batching and queues, distances and replicas.
CORE_PANELS = {
    ("faceauth-overview.json", "Requests / s"),
    ("faceauth-overview.json", "Face login p95"),
    ("faceauth-overview.json", "Enrolled templates"),
    ("faceauth-overview.json", "Request rate by endpoint"),
    ("faceauth-overview.json", "Latency by endpoint (p50 / p95 / p99)"),
    ("faceauth-overview.json", "Errors by endpoint"),
    ("faceauth-overview.json", "Login outcomes"),
    ("faceauth-overview.json", "Shed requests / s"),
    ("faceauth-overview.json", "Face requests in flight per pod"),
    ("faceauth-overview.json", "Liveness verdicts"),
    ("faceauth-overview.json", "Genuine distances"),
    ("faceauth-overview.json", "Impostor distances"),
    ("faceauth-overview.json", "Mean distance by decision"),
    ("faceauth-overview.json", "Downstream latency p95"),
    ("faceauth-overview.json", "Replicas (HPA)"),
    ("faceauth-model-servers.json", "Request rate"),
    ("faceauth-model-servers.json", "Latency (p50 / p95 / p99)"),
    ("faceauth-model-servers.json", "Errors by code"),
    ("faceauth-model-servers.json", "Queue depth per pod"),
    ("faceauth-model-servers.json", "In-flight calls per pod"),
    ("faceauth-model-servers.json", "Mean batch size"),
    ("faceauth-model-servers.json", "Batch sizes"),
    ("faceauth-model-servers.json", "CPU per pod"),
    ("faceauth-model-servers.json", "Memory per pod"),
    ("faceauth-model-servers.json", "Replicas (HPA)"),
}
ALICE = ("Tony_Blair", (2, 3), (4, 5, 6))  # LFW photos: enrolled, then used to log in
STRANGER = ("Serena_Williams", 1)


@dataclass
class Stack:
    prometheus: str  # base URL
    auth: str  # base URL
    api_key: str
    redis: redis.Redis  # the rate limits' storage, as the chart configures it


def objects() -> tuple[Manifest, ...]:
    return render("default", SETTINGS)


def secret_value(name: str, key: str) -> str:
    return base64.b64decode(named(objects(), "Secret", name)["data"][key]).decode()


def chart_env(spec: Manifest, database_url: str) -> dict[str, str]:
    """A container's environment as the chart renders it, Secret references resolved."""
    env = {}
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        reference = item["valueFrom"]["secretKeyRef"]
        if reference["name"] == f"{RELEASE}-database":  # an existing Secret in the cluster; here a file
            env[item["name"]] = database_url
        else:
            env[item["name"]] = secret_value(reference["name"], reference["key"])
    return env


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60,
               process: subprocess.Popen[bytes] | None = None) -> None:
    give_up = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > give_up:
            pytest.fail(f"{what}: not reached within {timeout:g} s")
        time.sleep(0.2)


class KubeStateMetrics(BaseHTTPRequestHandler):
    """Stand-in for kube-state-metrics: the HPA series the dashboards and alerts read."""

    def do_GET(self) -> None:
        lines = []
        for component in PODS:
            labels = f'namespace="{NAMESPACE}",horizontalpodautoscaler="{component_name(component)}"'
            lines += [f"kube_horizontalpodautoscaler_status_current_replicas{{{labels}}} 1",
                      f"kube_horizontalpodautoscaler_status_desired_replicas{{{labels}}} 1",
                      f"kube_horizontalpodautoscaler_spec_max_replicas{{{labels}}} 8"]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def prometheus_config(targets: dict[str, str], kube_state_metrics: str) -> dict[str, Any]:
    """Scrape jobs labelled the way the chart's ServiceMonitors label them."""
    jobs: list[dict[str, Any]] = [{"job_name": component, "metrics_path": "/metrics",
                                   "static_configs": [{"targets": [target],
                                                       "labels": {"namespace": NAMESPACE, "pod": PODS[component]}}]}
                                  for component, target in targets.items()]
    jobs.append({"job_name": "kube-state-metrics", "honor_labels": True,
                 "static_configs": [{"targets": [kube_state_metrics]}]})
    # Short intervals keep the test quick; the timeout leaves room for a busy machine (a failed scrape
    # would mark every series of the target stale until the next one).
    return {"global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"], "scrape_configs": jobs}


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    """The instant query's result; fails the test with Prometheus' error when it does not evaluate."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        answer = get_json(url)
    except urllib.error.HTTPError as error:
        pytest.fail(f"Prometheus refused\n{expression}\n{error.read().decode()}")
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def post(url: str, api_key: str, user_id: str, image: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n{user_id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, body, method="POST", headers={
        "Authorization": f"Bearer {api_key}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def grey_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 128)).save(buffer, "JPEG")
    return buffer.getvalue()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = tool("prometheus")
    workdir = tmp_path_factory.mktemp("helm-live")
    database_url = f"sqlite:///{workdir}/faceauth.db"
    python_path = {"PYTHONPATH": os.pathsep.join(sys.path)}
    rendered = objects()
    processes: list[subprocess.Popen[bytes]] = []
    auth: AuthProcess | None = None
    servers: list[ServiceProcess] = []
    ksm = ThreadingHTTPServer(("127.0.0.1", 0), KubeStateMetrics)
    threading.Thread(target=ksm.serve_forever, daemon=True).start()
    resources = contextlib.ExitStack()
    try:
        # detector and embedder with the chart's environment (ports and model folder are local ones)
        for component in ("detector", "embedder"):
            env = chart_env(container(named(rendered, "Deployment", component_name(component)), component),
                            database_url)
            for local in ("FACEAUTH_GRPC_PORT", "FACEAUTH_METRICS_PORT"):
                env.pop(local)
            env.update(python_path, FACEAUTH_MODEL_DIR=str(model_dir), HOME=str(workdir))
            servers.append(ServiceProcess(f"faceauth_{component}", env,
                                          (workdir / f"{component}.log").open("wb")))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServiceProcess.start, servers))
        detector, embedder = servers

        # the migration Job's command and environment
        job = named(rendered, "Job", component_name("migrations"))
        (job_container,) = job["spec"]["template"]["spec"]["containers"]
        command = job_container["command"]
        assert command[0] == "python"
        job_env = {**os.environ, **chart_env(job_container, database_url), **python_path, "HOME": str(workdir)}
        migrated = subprocess.run([sys.executable, *command[1:]], env=job_env, capture_output=True, text=True,
                                  timeout=120, check=False)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr

        # the rate limits' Redis with the chart's arguments and generated password, on a local port
        redis_args = container(named(rendered, "Deployment", component_name("redis")), "redis")["args"]
        redis_args = [secret_value(f"{RELEASE}-rate-limit", "password") if arg == "$(REDIS_PASSWORD)" else arg
                      for arg in redis_args]
        redis_port = free_port()
        redis_args[redis_args.index("--port") + 1] = str(redis_port)
        resources.enter_context(redis_server([*redis_args, "--bind", "127.0.0.1"], redis_port))

        # auth under gunicorn, as the image's entrypoint runs it, with the chart's environment and Secrets
        spec = container(named(rendered, "Deployment", component_name("auth")), "auth")
        env = chart_env(spec, database_url)
        redis_host = f"{component_name('redis')}.{NAMESPACE}.svc.cluster.local:6379"
        assert redis_host in env["FACEAUTH_RATE_LIMIT_STORAGE_URI"]
        env["FACEAUTH_RATE_LIMIT_STORAGE_URI"] = env["FACEAUTH_RATE_LIMIT_STORAGE_URI"].replace(
            redis_host, f"127.0.0.1:{redis_port}")
        env["FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER"] = "false"  # as in the pod: the counts must be shared
        assert env["FACEAUTH_MIGRATE_ON_START"] == "false"
        keys = workdir / "keys"
        keys.mkdir()
        for variable, secret in (("FACEAUTH_JWT_CURRENT_KEY_FILE", "jwt"), ("FACEAUTH_JWT_NEXT_KEY_FILE", "jwt"),
                                 ("FACEAUTH_TEMPLATE_KEY_FILE", "template-key"),
                                 ("FACEAUTH_API_KEY_PEPPER_FILE", "api-key-pepper")):
            name = Path(env[variable]).name
            (keys / name).write_text(secret_value(f"{RELEASE}-{secret}", name))
            env[variable] = str(keys / name)
        for local in ("FACEAUTH_PORT", "FACEAUTH_METRICS_PORT"):  # AuthProcess listens on free local ports
            env.pop(local)
        env.update(python_path, FACEAUTH_DETECTOR_TARGET=f"dns:///{detector.target}",
                   FACEAUTH_EMBEDDER_TARGET=f"dns:///{embedder.target}", HOME=str(workdir),
                   PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus-multiproc"))
        auth = AuthProcess(env, (workdir / "auth.log").open("wb"))
        auth.start()

        # Prometheus
        port = free_port()
        config = prometheus_config({"detector": f"127.0.0.1:{detector.metrics_port}",
                                    "embedder": f"127.0.0.1:{embedder.metrics_port}",
                                    "auth": f"127.0.0.1:{auth.metrics_port}"}, f"127.0.0.1:{ksm.server_port}")
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        (workdir / "rules.yaml").write_text(yaml.safe_dump(alert_rules("default", SETTINGS)))
        prometheus = subprocess.Popen(
            [prometheus_binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"], stdout=(workdir / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
        processes.append(prometheus)
        prometheus_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(f"{prometheus_url}/-/ready", timeout=2).status == 200,
                   "Prometheus ready", process=prometheus)
        # Traffic must start after the first scrapes, or rates over it would be zero.
        wait_until(lambda: len(query(prometheus_url, "up == 1")) == len(config["scrape_configs"]),
                   "every target scraped", timeout=30, process=prometheus)

        yield Stack(prometheus_url, auth.url, secret_value(f"{RELEASE}-api-key", "api-key"),
                    redis.Redis(port=redis_port, password=secret_value(f"{RELEASE}-rate-limit", "password")))
    finally:
        for process in processes:
            stop(process)
        if auth is not None:
            auth.stop()
        for server in servers:
            server.stop()
        resources.close()
        ksm.shutdown()


@pytest.fixture(scope="module")
def traffic(stack: Stack, lfw: Path) -> Stack:
    """Real requests of every kind, spread over several 2 s scrapes; then Prometheus has the data."""
    def photo(name: str, index: int) -> bytes:
        return (lfw / "images" / name / f"{name}_{index:04d}.jpg").read_bytes()

    name, enrolled, logins = ALICE
    user = f"alice-{uuid.uuid4().hex[:8]}"
    for index in enrolled:
        assert post(f"{stack.auth}/auth/face-register", stack.api_key, user, photo(name, index)) == 201
    requests = ([(user, photo(name, index), 200) for index in logins]
                + [(user, photo(*STRANGER), 401), (user, grey_jpeg(), 422), (user, b"not a photo", 400)])
    login = f"{stack.auth}/auth/face-login"
    with ThreadPoolExecutor(4) as pool:  # concurrent calls give the batchers something to batch
        for _ in range(3):
            statuses = list(pool.map(lambda r: post(login, stack.api_key, r[0], r[1]), requests))
            assert statuses == [expected for _, _, expected in requests]
            time.sleep(2.5)
    wait_until(lambda: bool(query(stack.prometheus, 'faceauth_login_outcomes_total{outcome="no_face"}')),
               "login outcomes scraped", timeout=20)
    time.sleep(4)  # a couple more scrapes and rule evaluations
    wait_until(lambda: len(query(stack.prometheus, "up == 1")) == 4, "every target up after the traffic", timeout=20)
    return stack


def test_targets_are_up(traffic: Stack) -> None:
    targets = get_json(f"{traffic.prometheus}/api/v1/targets")["data"]["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert health == {"detector": "up", "embedder": "up", "auth": "up", "kube-state-metrics": "up"}, \
        [(t["labels"]["job"], t["lastError"]) for t in targets]


def test_dashboard_queries_evaluate_and_core_panels_show_data(traffic: Stack) -> None:
    empty = []
    for board, title, expression in dashboard_queries():
        for variable, value in DASHBOARD_VARIABLES.items():
            expression = expression.replace(variable, value)
        assert "$" not in expression, f"{board} / {title}: unknown variable in {expression}"
        result = query(traffic.prometheus, expression)
        if (board, title) in CORE_PANELS and not result:
            empty.append(f"{board} / {title}: {expression}")
        if (board, title) in CORE_PANELS and "histogram_quantile" in expression:
            assert any(series["value"][1] != "NaN" for series in result), f"{board} / {title}: only NaN: {result}"
    assert not empty, "core panels without data:\n" + "\n".join(empty)


def test_dashboard_variables_find_their_values(traffic: Stack) -> None:
    for name, board in dashboards().items():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"]["query"])
            assert found, f"{name}: variable {variable['name']} is not a label_values() query"
            metric, label = found.groups()
            values = {series["metric"].get(label) for series in query(traffic.prometheus, metric)}
            assert NAMESPACE in values if label == "namespace" else values, (name, variable["name"], values)


def test_alert_expressions_evaluate_and_the_rules_run_cleanly(traffic: Stack) -> None:
    groups = alert_rules("default", SETTINGS)["groups"]
    for group in groups:
        for rule in group["rules"]:
            query(traffic.prometheus, rule["expr"])
    loaded = get_json(f"{traffic.prometheus}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in loaded for rule in group["rules"]]
    assert len(rules) == sum(len(group["rules"]) for group in groups)
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken, broken
    # Healthy services must not look broken (pending counts too: it would fire if it lasted). Latency and
    # distance alerts depend on this machine's speed and on a week of history, so they are left out here.
    health_alerts = {"FaceauthTargetDown", "FaceauthAuthHigh5xxRatio", "FaceauthModelServerShedding",
                     "FaceauthDownstreamErrors", "FaceauthDetectorQueueSaturated", "FaceauthEmbedderQueueSaturated",
                     "FaceauthAuthShedding"}
    active = [(rule["name"], alert["labels"]) for rule in rules for alert in rule.get("alerts", [])
              if rule["name"] in health_alerts]
    assert not active, active


def test_prometheus_adapter_rules_give_every_pod_a_value(traffic: Stack) -> None:
    pods = "|".join(PODS.values())
    for rule in adapter_rules("default"):
        series = rule["seriesQuery"].split("{")[0]
        assert query(traffic.prometheus, rule["seriesQuery"]), f"no series for {rule['seriesQuery']}"
        expression = (rule["metricsQuery"].replace("<<.Series>>", series)
                      .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{pods}"')
                      .replace("<<.GroupBy>>", "pod"))
        result = query(traffic.prometheus, expression)
        expected = {PODS["auth"]} if series.startswith("faceauth_http") else {PODS["detector"], PODS["embedder"]}
        assert {r["metric"]["pod"] for r in result} == expected, (rule["name"]["as"], result)
        if rule["name"]["as"] == "faceauth_http_requests_per_second":
            assert float(result[0]["value"][1]) > 0


def test_rate_limits_are_counted_in_the_charts_redis(traffic: Stack) -> None:
    """auth reached the chart's Redis with the URI and password of the chart's Secret: the counts are there."""
    keys = [key.decode() for key in traffic.redis.scan_iter("*faceauth*")]
    assert any("application:" in key for key in keys), keys
