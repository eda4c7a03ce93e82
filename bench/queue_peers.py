"""The task queues the throughput benchmark runs beside jobyard, on the same redis-server
(each in its own database): RQ and Celery, each given a task that does nothing. Their
workers import this module (`rq worker`, `celery -A bench.queue_peers`)."""

import os
import time

import redis
import rq
from celery import Celery

CELERY_URL_ENV = "BENCH_CELERY_URL"
CELERY_DONE_KEY = "bench:celery:done"  # Celery keeps no count of tasks done: the task does
RQ_STARTS_KEY = "bench:rq:started"  # job name -> when it started (perf_counter)


def noop() -> None:
    """RQ's task: RQ counts it in its finished-job registry."""


def stamp(name: str) -> None:
    """RQ's task for the dispatch benchmark: notes when it started, on perf_counter's clock
    (CLOCK_MONOTONIC: the same in every process of the machine)."""
    job = rq.get_current_job()
    assert job is not None
    job.connection.hset(RQ_STARTS_KEY, name, time.perf_counter())


celery = Celery("bench", broker=os.environ.get(CELERY_URL_ENV, "redis://127.0.0.1:6379/2"))
celery.conf.update(worker_hijack_root_logger=False, task_ignore_result=True)
_counter: redis.Redis | None = None


@celery.task(name="bench.noop")
def celery_noop() -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(celery.conf.broker_url)
    _counter.incr(CELERY_DONE_KEY)
