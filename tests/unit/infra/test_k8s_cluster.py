"""infra/k8s-cluster/keda.yaml: the workers' KEDA scaling when Redis is a cluster.

The file replaces infra/k8s/keda.yaml in cluster mode. Checked offline: the KEDA schema
(the same vendored one as infra/k8s/), one trigger per stream shard with the bus's own shard
names, and a scaling modifier that sums every shard's lag.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv_utils
import pytest
import referencing
import referencing.jsonschema
import yaml

from common import bus
from common.settings import CommonSettings

FILE = "keda.yaml"


@pytest.fixture(scope="module")
def cluster_objects(paths: Any) -> list[dict[str, Any]]:
    path = paths.infra / "k8s-cluster" / FILE
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _validator(paths: Any, schema_file: str) -> jsonschema.protocols.Validator:
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
    return cls(schema, registry=registry)  # type: ignore[no-any-return]


def test_cluster_keda_objects_match_the_crd_schemas(paths: Any, cluster_objects: list[dict[str, Any]]) -> None:
    files = {"ScaledObject": "keda-scaledobject-v1alpha1.json",
             "TriggerAuthentication": "keda-triggerauthentication-v1alpha1.json"}
    assert {o["kind"] for o in cluster_objects} == set(files)
    for obj in cluster_objects:
        errors = [e.message for e in _validator(paths, files[obj["kind"]]).iter_errors(obj)]
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


@pytest.mark.parametrize(
    ("name", "streams", "group"),
    [("stt-worker", bus.audio_jobs_streams, bus.STT_GROUP),
     ("translation-worker", bus.transcriptions_streams, bus.TRANSLATION_GROUP)],
)
def test_each_worker_scales_on_the_summed_lag_of_every_shard(
    name: str, streams: Any, group: str, cluster_objects: list[dict[str, Any]], paths: Any
) -> None:
    configmap = next(d for d in yaml.safe_load_all((paths.k8s / "configmap.yaml").read_text())
                     if d and d["metadata"]["name"] == "speech-pipeline-config")
    shards = int(configmap["data"]["STREAM_SHARDS"])
    assert shards == CommonSettings.model_fields["stream_shards"].default
    bus.configure(cluster=True, shards=shards)
    scaled = next(o for o in cluster_objects if o["kind"] == "ScaledObject" and o["metadata"]["name"] == name)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == name
    triggers = spec["triggers"]
    assert [t["metadata"]["stream"] for t in triggers] == streams()
    assert all(t["type"] == "redis-cluster-streams" and t["metadata"]["consumerGroup"] == group for t in triggers)
    terms = sorted(p.strip() for p in spec["advanced"]["scalingModifiers"]["formula"].split("+"))
    assert terms == sorted(t["name"] for t in triggers)  # the sum of every shard, each once
    assert int(spec["advanced"]["scalingModifiers"]["target"]) >= 1
