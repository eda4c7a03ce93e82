"""The task queues the throughput benchmark runs beside jobyard, on the same redis-server
(each in its own database): RQ and Celery, each given a task that does nothing. Their
workers import this module (`rq worker`, `celery -A bench.queue_peers`)."""

import os

import redis
from celery import Celery

CELERY_URL_ENV = "BENCH_CELERY_URL"
CELERY_DONE_KEY = "bench:celery:done"  # Celery keeps no count of tasks done: the task does


def noop() -> None:
    """RQ's task: RQ counts it in its finished-job registry."""


celery = Celery("bench", broker=os.environ.get(CELERY_URL_ENV, "redis://127.0.0.1:6379/2"))
celery.conf.update(worker_hijack_root_logger=False, task_ignore_result=True)
_counter: redis.Redis | None = None


@celery.task(name="bench.noop")
def celery_noop() -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(celery.conf.broker_url)
    _counter.incr(CELERY_DONE_KEY)
