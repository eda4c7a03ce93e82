"""Batches and job arrays: how many items one batch request carries, and how an array's
jobs are told apart (the label that lists them, the variables each one reads).

Light on purpose: the `jobyard` command imports it at start-up.
"""

import secrets
from collections.abc import Mapping
from typing import Any

# The most items one batch carries: the submissions of POST /jobs/batch, the updates of
# POST /workers/{id}/updates, the jobs of one assignments answer.
MAX_BATCH = 1000

# Every job of an array carries the array's id under ARRAY_LABEL (so `jobyard jobs --label
# array=ID` lists them) and its own place under ARRAY_INDEX_LABEL; its environment has both.
ARRAY_LABEL = "array"
ARRAY_INDEX_LABEL = "array_index"
ARRAY_ID_ENV = "JOBYARD_ARRAY_ID"
ARRAY_INDEX_ENV = "JOBYARD_ARRAY_INDEX"


def new_array_id() -> str:
    return secrets.token_hex(6)


def array_jobs(body: Mapping[str, Any], size: int, array_id: str) -> list[dict[str, Any]]:
    """`size` copies of one submission body, job i (0 to size-1) told its index and the
    array's id in its env and its labels."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"an array holds 1 to {MAX_BATCH} jobs, not {size}")
    return [
        {
            **body,
            "env": {**(body.get("env") or {}), ARRAY_ID_ENV: array_id, ARRAY_INDEX_ENV: str(i)},
            "labels": {
                **(body.get("labels") or {}),
                ARRAY_LABEL: array_id,
                ARRAY_INDEX_LABEL: str(i),
            },
        }
        for i in range(size)
    ]
