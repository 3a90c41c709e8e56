"""infra/k8s/ validated offline: `kubernetes-validate --strict`, KEDA CRD schemas, wiring.

kubernetes-validate knows only built-in kinds: for a CRD it prints a WARN and passes. So the
KEDA objects (ScaledObject, TriggerAuthentication) are checked here against strict JSON
schemas in schemas/, which reuse kubernetes-validate's own definitions for ObjectMeta and
the HPA behaviour. Then the references between objects: selectors, ports, secrets, streams.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv_utils
import pytest
import referencing
import referencing.jsonschema
import yaml

import common.bus as bus

NAMESPACE = "speech-pipeline"
MIN_KUBERNETES = "1.27.0"
#: Custom resources and the schema file that validates each, by (apiVersion, kind).
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}
#: Deployment name -> (Python module it runs, settings class default for HEALTH_PORT).
DEPLOYMENTS = {"gateway": ("gateway", 8080), "stt-worker": ("stt_worker", 8081),
               "translation-worker": ("translation_worker", 8082), "transcript-store": ("transcript_store", 8083)}
_WARN = re.compile(r"^WARN .* Couldn't find schema for kind (\S+) with api version (\S+) ")


def _objects(k8s_objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects if o["kind"] == kind}


def _kubernetes_validate(
    python_tool: Callable[[str], list[str]], files: list[Path], version: str | None = None
) -> tuple[int, str]:
    versions = ["-k", version] if version else []
    result = subprocess.run(
        [*python_tool("kubernetes_validate"), "--strict", *versions, *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return result.returncode, result.stdout + result.stderr


# The newest schemas kubernetes-validate ships, and the oldest Kubernetes the manifests claim.
@pytest.mark.parametrize("version", [None, MIN_KUBERNETES])
def test_every_manifest_passes_kubernetes_validate_strict(
    version: str | None, k8s_files: list[Path], python_tool: Callable[[str], list[str]]
) -> None:
    returncode, output = _kubernetes_validate(python_tool, k8s_files, version)
    assert returncode == 0, output
    assert "ERROR" not in output, output
    # A WARN means "no schema": allowed only for the CRDs validated by the next test.
    for line in output.splitlines():
        if line.startswith("WARN"):
            match = _WARN.match(line)
            assert match, line
            kind, api_version = match.groups()
            assert (api_version, kind) in CRD_SCHEMAS, f"{kind} ({api_version}) is validated by nothing"


def test_kubernetes_validate_strict_rejects_an_unknown_field(
    paths: Any, tmp_path: Path, python_tool: Callable[[str], list[str]]
) -> None:
    """The check above is not vacuous: a misspelt container field fails it."""
    [deployment] = [d for d in yaml.safe_load_all((paths.k8s / "gateway.yaml").read_text())
                    if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    returncode, output = _kubernetes_validate(python_tool, [broken])
    assert returncode != 0
    assert "readinesProbe" in output


def _crd_validator(paths: Any, schema_file: str) -> jsonschema.protocols.Validator:
    """A validator whose $refs to kubernetes.io definitions resolve to kubernetes-validate's."""
    version = kv_utils.latest_version()
    definitions = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json",
        referencing.jsonschema.DRAFT202012.create_resource(definitions),
    )
    schema = json.loads((paths.schemas / schema_file).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema, registry=registry)
    return validator


def test_custom_resources_match_their_crd_schemas(paths: Any, k8s_objects: list[dict[str, Any]]) -> None:
    custom = [o for o in k8s_objects if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication"}
    for obj in custom:
        validator = _crd_validator(paths, CRD_SCHEMAS[(obj["apiVersion"], obj["kind"])])
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


def test_crd_schema_rejects_unknown_fields(paths: Any, k8s_objects: list[dict[str, Any]]) -> None:
    [scaled] = [o for o in k8s_objects if o["kind"] == "ScaledObject"][:1]
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"][0]["metdata"] = broken["spec"]["triggers"][0].pop("metadata")
    broken["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["window"] = 3
    validator = _crd_validator(paths, CRD_SCHEMAS[(scaled["apiVersion"], "ScaledObject")])
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "metdata" in messages and "window" in messages


def test_every_namespaced_object_is_in_the_pipeline_namespace(k8s_objects: list[dict[str, Any]]) -> None:
    for obj in k8s_objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"
    assert NAMESPACE in _objects(k8s_objects, "Namespace")


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_probes_security_and_resources(name: str, k8s_objects: list[dict[str, Any]]) -> None:
    module, health_port = DEPLOYMENTS[name]
    deployment = _objects(k8s_objects, "Deployment")[name]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["python", "-m", module]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ports["health"] == health_port == int(env["HEALTH_PORT"])
    assert env["HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs somewhere writable for temporary files and model caches.
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] in empty_dirs and mounts["/home/app/.cache"] in empty_dirs

    for kind in ("requests", "limits"):
        assert container["resources"][kind]["cpu"] and container["resources"][kind]["memory"]
    # Replica counts belong to the autoscalers (HPA or KEDA), which a fixed count would fight.
    assert "replicas" not in deployment["spec"]
    assert pod["terminationGracePeriodSeconds"] > 10  # SHUTDOWN_TIMEOUT_SECONDS' default


def test_gateway_port_and_services(k8s_objects: list[dict[str, Any]]) -> None:
    container = _objects(k8s_objects, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["websocket"] == int(env["GATEWAY_PORT"])
    services = _objects(k8s_objects, "Service")
    assert services["gateway"]["spec"]["type"] == "LoadBalancer"
    # Only the WebSocket is public: health and metrics stay on a ClusterIP service.
    assert [p["port"] for p in services["gateway"]["spec"]["ports"]] == [5026]
    assert services["gateway-metrics"]["spec"]["type"] == "ClusterIP"


def _pod_templates(k8s_objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"] for o in k8s_objects if o["kind"] in {"Deployment", "StatefulSet"}]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_services_and_budgets_select_existing_pods_and_ports(k8s_objects: list[dict[str, Any]]) -> None:
    templates = _pod_templates(k8s_objects)
    for service in _objects(k8s_objects, "Service").values():
        selected = [t for t in templates if _selects(service["spec"]["selector"], t["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        port_names = {p["name"] for t in selected for c in t["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{service['metadata']['name']}: {port['targetPort']}"
    budgets = _objects(k8s_objects, "PodDisruptionBudget")
    assert set(budgets) == set(DEPLOYMENTS)
    for name, budget in budgets.items():
        labels = _objects(k8s_objects, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert _selects(budget["spec"]["selector"]["matchLabels"], labels)


def test_references_to_configmaps_and_secrets_resolve(k8s_objects: list[dict[str, Any]]) -> None:
    configmaps = _objects(k8s_objects, "ConfigMap")
    secrets = _objects(k8s_objects, "Secret")
    for template in _pod_templates(k8s_objects):
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], ref
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
    for auth in _objects(k8s_objects, "TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref


def test_secret_template_holds_placeholders_only(paths: Any) -> None:
    [secret] = yaml.safe_load_all((paths.k8s / "templates" / "secret.example.yaml").read_text())
    assert all(value.startswith("CHANGE_ME") for value in secret["stringData"].values())


def test_gateway_hpa_targets_the_gateway(k8s_objects: list[dict[str, Any]]) -> None:
    hpa = _objects(k8s_objects, "HorizontalPodAutoscaler")["gateway"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


@pytest.mark.parametrize(
    ("name", "stream", "group"),
    [("stt-worker", bus.AUDIO_JOBS, bus.STT_GROUP),
     ("translation-worker", bus.TRANSCRIPTIONS, bus.TRANSLATION_GROUP)],
)
def test_keda_scales_each_worker_on_its_consumer_group_lag(
    name: str, stream: str, group: str, k8s_objects: list[dict[str, Any]]
) -> None:
    scaled = _objects(k8s_objects, "ScaledObject")[name]["spec"]
    assert scaled["scaleTargetRef"]["name"] in _objects(k8s_objects, "Deployment")
    assert scaled["scaleTargetRef"]["name"] == name
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "redis-streams"
    metadata = trigger["metadata"]
    assert (metadata["stream"], metadata["consumerGroup"]) == (stream, group)
    assert int(metadata["lagCount"]) >= 1
    host, port = metadata["address"].rsplit(":", 1)
    assert host.split(".")[:2] == ["redis", NAMESPACE] and port == "6379"
    assert trigger["authenticationRef"]["name"] in _objects(k8s_objects, "TriggerAuthentication")
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]


def test_redis_statefulset_persists_an_append_only_file(k8s_objects: list[dict[str, Any]]) -> None:
    redis = _objects(k8s_objects, "StatefulSet")["redis"]["spec"]
    assert redis["serviceName"] in _objects(k8s_objects, "Service")
    [container] = redis["template"]["spec"]["containers"]
    assert re.fullmatch(r"redis:7(\.[\d.]+)?(-[a-z0-9]+)?", container["image"])
    [claim] = redis["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[claim["metadata"]["name"]] == "/data"
    config = _objects(k8s_objects, "ConfigMap")["redis-config"]["data"]["redis.conf"]
    assert re.search(r"^appendonly yes$", config, re.MULTILINE)
    assert re.search(r"^maxmemory-policy noeviction$", config, re.MULTILINE)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _policy_ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_network_policies_allow_only_the_pipeline_flows(k8s_objects: list[dict[str, Any]]) -> None:
    policies = _objects(k8s_objects, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    assert _policy_ports(policies["allow-dns-egress"]["spec"]["egress"]) == {53}
    assert _policy_ports(policies["gateway-allow-clients"]["spec"]["ingress"]) == {5026}
    assert _policy_ports(policies["redis-allow-clients"]["spec"]["ingress"]) == {6379}
    assert _policy_ports(policies["redis-clients-allow-egress"]["spec"]["egress"]) == {6379}
    # Prometheus may reach exactly the health ports the Deployments serve.
    assert _policy_ports(policies["metrics-allow-prometheus"]["spec"]["ingress"]) == {
        port for _, port in DEPLOYMENTS.values()
    }
    # Every service pod is a Redis client by label, so the Redis policies cover it.
    client_label = policies["redis-clients-allow-egress"]["spec"]["podSelector"]["matchLabels"]
    for name in DEPLOYMENTS:
        labels = _objects(k8s_objects, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert _selects(client_label, labels), name
