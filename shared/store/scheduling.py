"""Everything the scheduler reads and writes, as one part of the Store: the snapshot of a
pass (snapshot.py), the lease (lease.py), the commits (commits.py) and the reaper's queries
(reaping.py)."""

from shared.store.commits import Commits
from shared.store.lease import SchedulerLease
from shared.store.reaping import ReaperQueries
from shared.store.snapshot import SnapshotReads


class SchedulingStore(SnapshotReads, SchedulerLease, Commits, ReaperQueries):
    """`store.scheduling`: the four parts over one client, key builder and clock."""
