"""The transcript store in compose and Kubernetes: PostgreSQL on a volume, the migration step
before the store, and DATABASE_URL pointing the store and the gateway at the same database."""

from __future__ import annotations

from typing import Any

import yaml

NAMESPACE = "speech-pipeline"
MIGRATE = ["python", "-m", "transcript_store.migrate", "upgrade"]


def _objects(k8s_objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects if o["kind"] == kind}


def test_compose_runs_postgres_on_a_volume_and_migrates_before_the_store(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    volume = next(v for v in postgres["volumes"] if (v["target"] if isinstance(v, dict) else v.split(":")[1])
                  == "/var/lib/postgresql/data")
    source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    assert source in compose_config["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert not postgres.get("ports"), "the database is not published on the host"

    migrate = services["transcript_store_migrate"]
    assert migrate["command"] == MIGRATE
    assert migrate["image"] == services["transcript_store"]["image"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    store = services["transcript_store"]
    assert store["command"] == ["python", "-m", "transcript_store"]
    assert store["depends_on"]["transcript_store_migrate"]["condition"] == "service_completed_successfully"
    assert store["depends_on"]["redis"]["condition"] == "service_healthy"
    # One database for the writer, the migration and the reader.
    urls = {services[name]["environment"]["DATABASE_URL"] for name in ("transcript_store", "gateway")}
    urls.add(migrate["environment"]["DATABASE_URL"])
    [url] = urls
    assert url.startswith("postgresql://") and "@postgres:5432/" in url


def test_k8s_postgres_statefulset_keeps_its_data_on_a_claim(k8s_objects: list[dict[str, Any]]) -> None:
    postgres = _objects(k8s_objects, "StatefulSet")["postgres"]["spec"]
    assert postgres["serviceName"] in _objects(k8s_objects, "Service")
    [container] = postgres["template"]["spec"]["containers"]
    assert container["image"].startswith("postgres:15")
    [claim] = postgres["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/postgresql/data"
    env = {e["name"]: e for e in container["env"]}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "POSTGRES_PASSWORD"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_k8s_store_migrates_in_an_init_container_on_the_same_image(k8s_objects: list[dict[str, Any]]) -> None:
    pod = _objects(k8s_objects, "Deployment")["transcript-store"]["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    [store] = pod["containers"]
    assert migrate["args"] == MIGRATE and migrate["image"] == store["image"]
    host = f"@postgres.{NAMESPACE}.svc.cluster.local:5432/"
    for container in (migrate, store):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DATABASE_URL"].startswith("postgresql://") and host in env["DATABASE_URL"]
        assert "$(POSTGRES_PASSWORD)" in env["DATABASE_URL"]  # from the Secret, never a literal
    gateway = _objects(k8s_objects, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    gateway_env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert gateway_env["DATABASE_URL"] == {e["name"]: e.get("value") for e in store["env"]}["DATABASE_URL"]


def test_k8s_only_the_store_and_the_gateway_reach_postgres(k8s_objects: list[dict[str, Any]]) -> None:
    policies = _objects(k8s_objects, "NetworkPolicy")
    ingress = policies["postgres-allow-clients"]["spec"]
    assert ingress["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "postgres"}
    [rule] = ingress["ingress"]
    label = rule["from"][0]["podSelector"]["matchLabels"]
    assert [p["port"] for p in rule["ports"]] == [5432]
    clients = {name for name, d in _objects(k8s_objects, "Deployment").items()
               if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in label.items())}
    assert clients == {"gateway", "transcript-store"}
    assert policies["postgres-clients-allow-egress"]["spec"]["podSelector"]["matchLabels"] == label


def test_secret_template_has_the_postgres_password(paths: Any) -> None:
    [secret] = yaml.safe_load_all((paths.k8s / "templates" / "secret.example.yaml").read_text())
    assert secret["stringData"]["POSTGRES_PASSWORD"].startswith("CHANGE_ME")
