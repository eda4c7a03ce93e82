"""Two `jobyard scheduler` processes: one places, the other stands by; kill -9 the active
one and the standby takes over, with no job placed twice."""

import signal
import time

from tests.e2e.cluster import TERMINAL, Cluster, ClusterSpec

CLUSTER = ClusterSpec(env={"JOBYARD_REDIS_PREFIX": "failover:"}, schedulers=2)


def leader(cluster: Cluster) -> str:
    """The running scheduler process whose log says it leads (and has not since stood by)."""
    schedulers = [name for name in cluster.processes if name.startswith("scheduler")]
    for name in schedulers:
        log = (cluster.workdir / f"{name}.log").read_text()
        if "event=leading" in log and log.rfind("event=leading") > log.rfind("event=standby"):
            return name
    raise AssertionError("no scheduler leads:\n" + cluster.logs())


def test_the_standby_takes_over_after_the_leader_is_killed(cluster: Cluster) -> None:
    first = [cluster.client.submit({"command": ["true"]})["id"] for _ in range(5)]
    for job_id in first:
        cluster.wait_for_state(job_id, TERMINAL)
    active = leader(cluster)
    cluster.processes[active].send_signal(signal.SIGKILL)
    cluster.processes[active].wait()
    del cluster.processes[active]
    killed_at = time.monotonic()
    second = [cluster.client.submit({"command": ["true"]})["id"] for _ in range(5)]
    finished = [cluster.wait_for_state(job_id, TERMINAL, timeout_s=30) for job_id in second]
    takeover_s = time.monotonic() - killed_at
    assert {job["state"] for job in finished} == {"COMPLETED"}
    assert leader(cluster) != active
    assert takeover_s < 15, f"took {takeover_s:.1f} s"
    for job_id in first + second:
        events = cluster.client.events(job_id)["events"]
        assert [e["to"] for e in events].count("ASSIGNED") == 1, events
