"""values.schema.json and the README's parameter tables, generated from the chart's values.yaml.

values.yaml is the source: its `## @section` and `## @param` comments (bitnami readme-generator style)
give the descriptions, its defaults give the types, and RULES below add the constraints a default
cannot tell (ranges, enums, patterns). Run after changing values.yaml:

    .venv/bin/python deploy/helm/scripts/chart_docs.py          # rewrite both files
    .venv/bin/python deploy/helm/scripts/chart_docs.py --check  # exit 1 if either is stale (tests run this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "faceauth"
PARAMETERS_HEADING = "## Parameters"

PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
LOG = {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]}
NONNEG = {"type": "integer", "minimum": 0}
POS = {"type": "integer", "minimum": 1}
RATIO = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
EMBEDDERS = {"type": "string", "enum": ["mobilefacenet", "mobilefacenet-fast", "dlib-resnet", "dlib-resnet-fast"]}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
QUANTITY = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
INT_OR_PERCENT = {"type": ["integer", "string"], "pattern": "^([0-9]+%?)?$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DIGEST = {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"}
METRIC = {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"}

# Constraints by path; "*" matches one path element.
RULES: dict[str, dict[str, Any]] = {
    "global.imagePullSecrets": {"type": "array", "items": {"type": "string"}},
    "*.logLevel": LOG,
    "*.grpcPort": PORT, "*.grpcHealthPort": PORT, "networkPolicy.egress.database.port": PORT,
    "networkPolicy.egress.rateLimitStorage.port": PORT, "*.metricsPort": PORT, "auth.containerPort": PORT,
    "auth.service.port": PORT,
    "*.replicaCount": NONNEG, "*.revisionHistoryLimit": NONNEG, "auth.workers": POS,
    "*.batching.maxBatchSize": POS, "*.batching.maxQueue": POS,
    "*.batching.maxQueueDelayMs": {"type": "number", "minimum": 0},
    "*.intraOpThreads": NONNEG, "*.interOpThreads": NONNEG,
    "*.modelRuntime": {"type": "string", "enum": ["auto", "tflite", "savedmodel"]},
    "*.gpu.count": POS,
    "*.podAntiAffinityPreset": {"type": "string", "enum": ["", "soft", "hard"]},
    "*.terminationGracePeriodSeconds": NONNEG,
    "*.*Probe.initialDelaySeconds": NONNEG, "*.*Probe.periodSeconds": POS, "*.*Probe.timeoutSeconds": POS,
    "*.*Probe.failureThreshold": POS, "*.*Probe.successThreshold": POS,
    "*.pdb.minAvailable": INT_OR_PERCENT, "*.pdb.maxUnavailable": INT_OR_PERCENT,
    "*.autoscaling.minReplicas": POS, "*.autoscaling.maxReplicas": POS,
    "*.autoscaling.targetCPU": NONNEG,
    "*.autoscaling.customMetric.name": METRIC,
    "*.autoscaling.customMetric.targetAverageValue": QUANTITY,
    "*.image.digest": DIGEST,
    "image.pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
    "auth.service.type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "auth.jwt.lifetimeSeconds": POS,
    "auth.threads": POS, "auth.grpcTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
    "auth.maxInflight": POS, "auth.admissionWaitSeconds": {"type": "number", "minimum": 0},
    "auth.livenessPolicy": {"type": "string", "enum": ["off", "report", "enforce-passive", "challenge", "enforce"]},
    "auth.challengeLifetimeSeconds": {"type": "number", "exclusiveMinimum": 0},
    "auth.database.poolSize": POS, "auth.database.poolTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
    "auth.database.statementTimeoutSeconds": {"type": "number", "minimum": 0},
    "detector.livenessModel": {"type": "string", "enum": ["liveness", "antispoof", "faceantispoofing"]},
    "embedder.model": EMBEDDERS,
    "auth.lockout.maxFailures": NONNEG, "auth.lockout.windowSeconds": {"type": "number", "exclusiveMinimum": 0},
    "auth.lockout.maxWaitSeconds": {"type": "number", "exclusiveMinimum": 0}, "auth.lockout.permanentAfter": NONNEG,
    "auth.breaker.maxFailures": NONNEG, "auth.breaker.windowSeconds": {"type": "number", "exclusiveMinimum": 0},
    "auth.breaker.minRatio": {"type": "number", "minimum": 0, "maximum": 1},
    "embedder.legacyModels": {"type": "array", "items": EMBEDDERS, "uniqueItems": True},
    "auth.migrations.backoffLimit": NONNEG, "auth.migrations.activeDeadlineSeconds": POS,
    "auth.trustedProxyHops": {"anyOf": [{"type": "string", "enum": ["auto"]}, NONNEG]},
    "auth.attemptsPrune.keepDays": {"type": "number", "minimum": 0, "maximum": 36500},
    "auth.attemptsPrune.schedule": {"type": "string", "minLength": 9},
    "auth.attemptsPrune.backoffLimit": NONNEG, "auth.attemptsPrune.activeDeadlineSeconds": POS,
    "auth.auditPrune.keepDays": {"type": "number", "minimum": 90, "maximum": 36500},
    "auth.auditPrune.schedule": {"type": "string", "minLength": 9},
    "auth.auditPrune.backoffLimit": NONNEG, "auth.auditPrune.activeDeadlineSeconds": POS,
    "ingress.pathType": {"type": "string", "enum": ["Prefix", "Exact", "ImplementationSpecific"]},
    "ingress.paths": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}},
    "metrics.serviceMonitor.interval": {"type": "string", "pattern": "^(([0-9]+(ms|s|m|h))+)?$"},
    "metrics.serviceMonitor.scrapeTimeout": {"type": "string", "pattern": "^(([0-9]+(ms|s|m|h))+)?$"},
    "metrics.prometheusRule.http5xxRatio": RATIO,
    "metrics.prometheusRule.queueSaturationRatio": RATIO,
    "metrics.prometheusRule.downstreamErrorRatio": RATIO,
    "metrics.prometheusRule.shedRatio": RATIO,
    "metrics.prometheusRule.loginLatency.thresholdSeconds": {"type": "number", "exclusiveMinimum": 0},
    "metrics.prometheusRule.loginLatency.objective": {"type": "number", "exclusiveMinimum": 0,
                                                      "exclusiveMaximum": 1},
    "metrics.prometheusRule.distanceShift.maxMeanShift": {"type": "number", "exclusiveMinimum": 0},
    "metrics.prometheusRule.distanceShift.baseline": DURATION,
    "metrics.prometheusRule.distanceShift.minSamples": POS,
    "gpu.resourceName": {"type": "string", "pattern": "^[a-z0-9.-]+/[a-z0-9.-]+$"},
    "auth.rateLimit.redis.image.digest": DIGEST, "auth.rateLimit.redis.nodeSelector": STRING_MAP,
    "auth.rateLimit.redis.maxMemory": {"type": "string", "pattern": "^[0-9]+(kb|mb|gb)$"},
    "commonLabels": STRING_MAP, "commonAnnotations": STRING_MAP, "*.podLabels": STRING_MAP,
    "*.podAnnotations": STRING_MAP, "*.nodeSelector": STRING_MAP, "*.annotations": STRING_MAP,
    "*.*.annotations": STRING_MAP, "*.*.labels": STRING_MAP, "gpu.nodeSelector": STRING_MAP,
    "prometheusAdapter.rules": {"type": "array", "items": {
        "type": "object", "required": ["seriesQuery", "name", "metricsQuery"],
        "properties": {"seriesQuery": {"type": "string"}, "metricsQuery": {"type": "string"},
                       "resources": {"type": "object"}, "seriesFilters": {"type": "array"},
                       "name": {"type": "object", "properties": {"matches": {"type": "string"},
                                                                  "as": {"type": "string"}}}},
        "additionalProperties": False}},
}
# Kubernetes objects passed through as they are: checked by Kubernetes, not here.
OPEN = re.compile(r"^(.*\.)?(resources|affinity|nodeAffinity|updateStrategy|behavior|capabilities|seccompProfile|"
                  r"namespaceSelector|podSelector)$|^(podSecurityContext|containerSecurityContext)$")


def rule_for(path: str) -> dict[str, Any] | None:
    """The most specific RULES entry matching ``path`` (fewest wildcards wins)."""
    best: tuple[str, dict[str, Any]] | None = None
    for pattern, rule in RULES.items():
        regex = "^" + re.escape(pattern).replace("\\*", "[^.]+") + "$"
        if re.match(regex, path) and (best is None or pattern.count("*") < best[0].count("*")):
            best = (pattern, rule)
    return best[1] if best else None


def infer(value: Any) -> dict[str, Any]:
    for python_type, json_type in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                                   (list, "array"), (dict, "object")):
        if isinstance(value, python_type):
            return {"type": json_type}
    return {}


def build(value: Any, path: str, params: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if path in params:
        schema["description"] = params[path]
    rule = rule_for(path) if path else None
    if isinstance(value, dict) and value and not OPEN.match(path) and rule is None:
        schema["type"] = "object"
        schema["properties"] = {key: build(child, f"{path}.{key}" if path else key, params)
                                for key, child in value.items()}
        schema["additionalProperties"] = False
    else:
        schema.update(rule or infer(value))
        if OPEN.match(path) and isinstance(value, dict):
            schema["type"] = "object"
    if path:
        schema["default"] = value
    return schema


def values_schema(text: str) -> str:
    params = dict(re.findall(r"^\s*## @param (\S+) (.+)$", text, re.M))
    root = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "faceauth chart values",
            **build(yaml.safe_load(text), "", params)}
    root["properties"]["global"]["additionalProperties"] = True  # subcharts share `global`
    return json.dumps(root, indent=2) + "\n"


def show(value: Any) -> str:
    if isinstance(value, dict | list):
        rendered = json.dumps(value, separators=(",", ":"))
        return f"`{rendered}`" if len(rendered) <= 60 else "see values.yaml"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return '`""`' if value == "" else f"`{value}`"


def parameter_tables(text: str) -> str:
    values = yaml.safe_load(text)
    lines: list[str] = []
    for line in text.splitlines():
        section = re.match(r"^## @section (.+)$", line.strip())
        if section:
            lines += ["", f"### {section.group(1)}", "", "| Name | Description | Value |", "|---|---|---|"]
            continue
        param = re.match(r"^## @param (\S+) (.+)$", line.strip())
        if param:
            name, description = param.groups()
            value = values
            for key in name.split("."):
                value = value[key]
            escaped = description.replace("|", "\\|")
            lines.append(f"| `{name}` | {escaped} | {show(value)} |")
    return "\n".join(lines).strip() + "\n"


def readme(text: str, current: str) -> str:
    head = current[:current.index(PARAMETERS_HEADING)]
    return f"{head}{PARAMETERS_HEADING}\n\n{parameter_tables(text)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    args = parser.parse_args(argv)
    text = (CHART / "values.yaml").read_text()
    readme_path = CHART / "README.md"
    wanted = {CHART / "values.schema.json": values_schema(text), readme_path: readme(text, readme_path.read_text())}
    stale = [path for path, content in wanted.items() if path.read_text() != content]
    if args.check:
        for path in stale:
            print(f"{path} is out of date with values.yaml; run {Path(__file__).name}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
