"""The API load benchmark reads wrk's report: its rate, latency percentiles in any unit,
and the count of error answers; a report it cannot read is an error, never a zero."""

import pytest

from bench.api_load import parse

REPORT = """Running 10s test @ http://127.0.0.1:8000/api/v1/jobs
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    61.09ms   40.12ms 512.33ms   78.01%
  Latency Distribution
     50%   55.20ms
     75%   80.01ms
     90%  110.72ms
     99%    1.25s
  10456 requests in 10.01s, 7.23MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   1044.61
Transfer/sec:    739.60KB
"""


def test_it_reads_the_rate_the_percentiles_and_the_errors() -> None:
    assert parse(REPORT) == {
        "requests_per_s": 1044.61,
        "p50_ms": 55.2,
        "p99_ms": 1250.0,
        "errors": 12.0,
    }


def test_microseconds_and_no_errors() -> None:
    report = REPORT.replace("55.20ms", "870.00us").replace("  Non-2xx or 3xx responses: 12\n", "")
    figures = parse(report)
    assert figures["p50_ms"] == pytest.approx(0.87)
    assert figures["errors"] == 0.0


def test_a_report_without_figures_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="cannot read"):
        parse("unable to connect to 127.0.0.1:8000 Connection refused\n")
