"""The latency histograms jobyard keeps (shared/store/metrics.py reads them, the Lua
transitions observe them, /metrics reports them): one set of bucket bounds, and the series.

`placement`: queued to assigned; `dispatch`: assigned to started; `run_<STATE>`: started to
that terminal state.
"""

from shared.states import TERMINAL_STATE_NAMES

# Bucket bounds in seconds, shared by every series: from a fast placement (milliseconds) to
# a long job (a day). The Lua preamble is generated from this tuple.
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 14400.0, 86400.0,
)  # fmt: skip
RUN_OUTCOMES = TERMINAL_STATE_NAMES
LATENCY_SERIES = ("placement", "dispatch", *(f"run_{outcome}" for outcome in RUN_OUTCOMES))
