"""Fixtures for tests against the real Docker daemon: the client (skip, or fail under
JOBYARD_REQUIRE_DOCKER=1, when no daemon answers), the test image, and per-test cleanup."""

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException, ImageNotFound
from docker.models.containers import Container

from tests.helpers import services_required

IMAGE = "jobyard/busybox:latest"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-image.sh"


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"JOBYARD_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of a daemon that answers, with the test image present (built if missing).

    The daemon is looked for here, when a test first needs it, never at import.
    """
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        _unavailable(f"no Docker daemon answers ({exc})")
    try:
        client.images.get(IMAGE)
    except ImageNotFound:
        built = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
        if built.returncode != 0:
            _unavailable(f"the test image {IMAGE} could not be built: {built.stderr.strip()}")
    yield client
    client.close()


@pytest.fixture
def worker_id(docker_client: docker.DockerClient) -> Iterator[str]:
    """A worker id of this test alone; whatever carries its label is removed afterwards."""
    ident = f"test-{uuid.uuid4().hex[:12]}"
    yield ident
    remove_labelled(docker_client, f"jobyard.worker={ident}")


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)


@pytest.fixture
def containers_of(docker_client: docker.DockerClient) -> Callable[[str], list[Container]]:
    """containers_of(worker_id): every container, running or not, labelled with it."""

    def find(worker: str) -> list[Container]:
        label = f"jobyard.worker={worker}"
        return list(docker_client.containers.list(all=True, filters={"label": label}))

    return find
