"""A job's resource defaults have one source, DEFAULT_JOB_RESOURCES: what the submission
schema fills in and what the agent assumes of an assignment that names none. (The OpenAPI
document's defaults: tests/integration/test_openapi.py; the CLI's: tests/cli.)"""

from shared.config import Config
from shared.resources import DEFAULT_JOB_RESOURCES, cpu_to_millicores
from shared.schemas.jobs import JobSubmitSchema
from worker_agent.attempt import job_run


def test_a_submission_without_resources_gets_the_defaults() -> None:
    loaded = JobSubmitSchema().load({"command": ["true"]})
    assert loaded["resources"] == DEFAULT_JOB_RESOURCES.to_wire()
    partial = JobSubmitSchema().load({"command": ["true"], "resources": {"memory_mb": 64}})
    assert partial["resources"] == {**DEFAULT_JOB_RESOURCES.to_wire(), "memory_mb": 64}


def test_the_agent_assumes_the_same_defaults() -> None:
    run = job_run({"id": "j1", "attempt": 1, "command": ["true"]}, "w1", Config.from_env({}))
    assert cpu_to_millicores(run.cpu) == DEFAULT_JOB_RESOURCES.cpu_m
    assert run.memory_mb == DEFAULT_JOB_RESOURCES.memory_mb
