"""End-to-end fixtures: the Docker daemon and test image come from tests/docker."""

import docker
import pytest

from tests.docker.conftest import IMAGE, docker_client

__all__ = ["docker_client"]


@pytest.fixture(scope="session")
def docker_image(docker_client: docker.DockerClient) -> str:
    return IMAGE
