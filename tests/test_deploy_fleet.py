"""Fleet deployments, checked by parsing them: docker-compose.yml scales its pinger, the Kubernetes manifests give
every member its own volume and uploader, the supervisor example runs several members and the host's uploader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from supervisor.options import ServerOptions

from tests.fixtures.core import REPO_ROOT


def _command_name(command: list[str]) -> str:
    """The manage.py command a container runs (through the ``wait_for_redis`` wrapper or not)."""
    assert command[:2] == ["python", "manage.py"], command
    return command[3] if command[2] == "wait_for_redis" else command[2]


def _known(command: list[str]) -> bool:
    return _command_name(command) in get_commands()


def test_compose_pinger_scales_without_fixed_names_or_ports():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    pinger = compose["services"]["pinger"]
    assert "container_name" not in pinger and "ports" not in pinger and "hostname" not in pinger
    assert _command_name(pinger["command"]) == "runpinger" and "--shard" not in pinger["command"]
    worker = compose["services"]["worker"]
    assert _command_name(worker["command"]) == "rotation_worker" and _known(worker["command"])
    # One volume for every app container: the worker sees the hour files of every pinger.
    assert pinger["volumes"] == worker["volumes"]


def _manifests() -> list[dict]:
    documents = []
    for path in sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _by_kind(kind: str) -> list[dict]:
    return [doc for doc in _manifests() if doc["kind"] == kind]


def test_k8s_pinger_members_each_have_a_volume_and_an_uploader_on_their_host_queue():
    (statefulset,) = _by_kind("StatefulSet")
    spec = statefulset["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["terminationGracePeriodSeconds"] >= 30  # the pinger drains, the uploader may be mid-run
    containers = {container["name"]: container for container in pod["containers"]}
    pinger, uploader = containers["pinger"], containers["uploader"]
    assert _command_name(pinger["command"]) == "runpinger" and "--shard" not in pinger["command"]
    assert _command_name(uploader["command"]) == "rotation_worker" and _known(uploader["command"])
    # Both on the pod's own persistent volume, at the LOG_ROOT they are given.
    (claim,) = spec["volumeClaimTemplates"]
    for container in (pinger, uploader):
        env = {item["name"]: item for item in container["env"]}
        (mount,) = container["volumeMounts"]
        assert mount["name"] == claim["metadata"]["name"]
        assert Path(env["LOG_ROOT"]["value"]).is_relative_to(mount["mountPath"])
        assert container["envFrom"] == [{"secretRef": {"name": "iseif-env"}}]
    # The uploader's host queue is the pod's: the fan-out reaches every pod's files.
    env = {item["name"]: item for item in uploader["env"]}
    assert env["ROTATION_HOST_QUEUE"]["value"] == "rotation-$(POD_NAME)"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert list(env).index("POD_NAME") < list(env).index("ROTATION_HOST_QUEUE")  # $(VAR) needs it defined first


def test_k8s_runs_exactly_one_scheduler():
    (deployment,) = [doc for doc in _by_kind("Deployment") if doc["metadata"]["name"] == "iseif-scheduler"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two during a rollout
    commands = [container["command"] for container in deployment["spec"]["template"]["spec"]["containers"]]
    assert ["python", "manage.py", "wait_for_redis", "rqcron", "loggerapp.cron"] in commands
    assert all(_known(command) for command in commands)


@pytest.fixture
def supervisor_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.setenv("SUPERVISOR_SOCKET", str(tmp_path / "supervisor" / "supervisor.sock"))
    (tmp_path / "supervisor").mkdir()


def test_supervisor_fleet_example_runs_several_members_and_the_hosts_uploader(supervisor_env):
    options = ServerOptions()
    options.realize(["-c", str(REPO_ROOT / "deploy" / "supervisord-fleet.conf")])
    groups = {group.name: group for group in options.process_group_configs}
    assert set(groups) == {"pinger", "worker"}
    members = groups["pinger"].process_configs
    assert len(members) >= 2
    assert len({member.name for member in members}) == len(members)
    assert len({member.stdout_logfile for member in members}) == len(members)
    for member in members:
        assert member.command.endswith("manage.py runpinger") and member.stopwaitsecs >= 30
    (worker,) = groups["worker"].process_configs
    assert worker.command.endswith("manage.py wait_for_redis rotation_worker")
