"""End-to-end fixtures: the one cluster fixture (each test module says its shape in a
module-level `CLUSTER = ClusterSpec(...)`), a factory for tests that need a cluster of their
own, and the Docker daemon and test image from tests/docker."""

from collections.abc import Iterator
from contextlib import ExitStack

import docker
import pytest

from tests.docker.conftest import IMAGE, docker_client
from tests.e2e.cluster import Cluster, ClusterSpec, MakeCluster, running_cluster

__all__ = ["docker_client"]


@pytest.fixture(scope="session")
def docker_image(docker_client: docker.DockerClient) -> str:
    return IMAGE


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    redis_url: str,
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The module's cluster, shaped by its CLUSTER spec (the defaults when it has none),
    shared by its tests; stopped after the last, with its leftover containers removed."""
    spec = getattr(request.module, "CLUSTER", ClusterSpec())
    workdir = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    with running_cluster(spec, redis_url, workdir, docker_client) as started:
        yield started


@pytest.fixture(scope="module")
def api_process(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real `jobyard api` (gunicorn, gevent worker) and nothing else: no scheduler, no
    agent, so no Docker; for what only the HTTP server in front of Flask decides."""
    api = Cluster(redis_url, tmp_path_factory.mktemp("api"))
    try:
        api.start("api", "api")
        api.wait_ready()
        yield api
    finally:
        api.stop()


@pytest.fixture
def make_cluster(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeCluster]:
    """make_cluster(redis_url, spec) starts a cluster of the test's own on that Redis, in its
    own directory; each is stopped after the test, with its leftover containers removed."""
    with ExitStack() as clusters:

        def make(redis_url: str, spec: ClusterSpec) -> Cluster:
            workdir = tmp_path_factory.mktemp("cluster")
            return clusters.enter_context(running_cluster(spec, redis_url, workdir, docker_client))

        yield make
