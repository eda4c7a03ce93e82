"""Worker endpoints: register, heartbeat, the assignment long-poll; and the workers list."""

import secrets
import socket
from typing import Any

from flask.views import MethodView

from api.auth import current, require, require_own_worker
from api.errors import attempt_refusal, documents_errors
from api.extensions import services
from api.guards import Blueprint
from shared.resources import Resources, cpu_to_millicores
from shared.schemas.workers import (
    AssignmentArgsSchema,
    AssignmentListSchema,
    HeartbeatAnswerSchema,
    HeartbeatSchema,
    RegisteredSchema,
    RegisterSchema,
    UpdatesAnswerSchema,
    UpdatesSchema,
    WorkerListSchema,
    WorkerSchema,
)
from shared.store.jobs import Backoff, Update, UpdateOutcome
from shared.store.tokens import token_hash

blp = Blueprint("workers", __name__, url_prefix="/api/v1/workers", description="Worker agents")


@blp.route("")
class Workers(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.response(200, WorkerListSchema)
    def get(self) -> Any:
        """Every worker; a user sees among its running jobs only their own."""
        store = services().store
        workers = store.workers.all()
        principal = current()
        if not principal.is_admin:
            # Another user's job is as good as absent, here too: not even its id.
            ids = [job_id for w in workers for job_id in w["running_jobs"]]
            owners = store.jobs.owners(ids)
            for worker in workers:
                worker["running_jobs"] = [
                    j for j in worker["running_jobs"] if owners.get(j) == principal.name
                ]
        return {"workers": workers}


@blp.route("/register")
class Register(MethodView):
    @require("join", "admin")
    @documents_errors(blp, 400, 401, 403, 413, 503)
    @blp.arguments(RegisterSchema())
    @blp.response(201, RegisteredSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Join the pool with the worker join token; answers the worker's own token. 503
        (code worker_limit) while JOBYARD_MAX_WORKERS worker records exist."""
        worker_id = f"{_short_host(body['hostname'])}-{secrets.token_hex(4)}"
        token = secrets.token_urlsafe(32)
        cap = body["capacity"]
        services().store.workers.register(
            worker_id,
            token_hash(token),
            hostname=body["hostname"],
            capacity=Resources(cpu_to_millicores(cap["cpu"]), cap["memory_mb"], cap["gpus"]),
            slots=body["max_parallel_jobs"],
            labels=body["labels"],
            executor=body["executor"],
            allows_network=body["allows_network"],
            max_workers=services().config.max_workers,
        )
        return {
            "worker_id": worker_id,
            "token": token,
            "heartbeat_s": services().config.heartbeat_s,
        }


@blp.route("/<string:worker_id>/heartbeat")
class Heartbeat(MethodView):
    @require("worker")
    @documents_errors(blp, 400, 401, 403, 404, 410, 413, 503)
    @blp.arguments(HeartbeatSchema())
    @blp.response(200, HeartbeatAnswerSchema)
    def post(self, body: dict[str, Any], worker_id: str) -> Any:
        """Alive; answers the jobs to cancel and the ones no longer this worker's."""
        require_own_worker(worker_id)
        running = [(job["id"], job["attempt"]) for job in body["running"]]
        cancel, stop = services().store.workers.heartbeat(worker_id, body["metrics"], running)
        return {"cancel": cancel, "stop": stop}


@blp.route("/<string:worker_id>/updates")
class Updates(MethodView):
    @require("worker")
    @documents_errors(blp, 400, 401, 403, 413, 503)
    @blp.arguments(UpdatesSchema())
    @blp.response(200, UpdatesAnswerSchema)
    def post(self, body: dict[str, Any], worker_id: str) -> Any:
        """Many starts and results of this worker's attempts in one call (1 to 1,000), each
        fenced on its own: every item answers what its per-job call would (`status`), and
        one refused item does not refuse the rest."""
        require_own_worker(worker_id)
        config = services().config
        backoff = Backoff(config.retry_backoff_s, config.retry_backoff_max_s)
        updates = [
            Update(item["id"], item["attempt"], item.get("result")) for item in body["updates"]
        ]
        outcomes = services().store.jobs.update_many(worker_id, updates, backoff)
        return {
            "updates": [
                _update_answer(update, outcome)
                for update, outcome in zip(updates, outcomes, strict=True)
            ]
        }


def _update_answer(update: Update, outcome: UpdateOutcome) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": update.job_id, "attempt": update.attempt}
    if outcome.transition is not None:
        state, version = outcome.transition.state, outcome.transition.version
        return {**answer, "status": 200, "state": state, "version": version,
                "cancel": outcome.cancel, "code": None, "error": None}  # fmt: skip
    assert outcome.refused is not None
    status, code = attempt_refusal(outcome.refused)
    return {**answer, "status": status, "state": None, "version": None,
            "cancel": outcome.cancel, "code": code, "error": str(outcome.refused)}  # fmt: skip


@blp.route("/<string:worker_id>/drain")
class Drain(MethodView):
    @require("admin", "worker")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.response(200, WorkerSchema)
    def post(self, worker_id: str) -> Any:
        """Take no new jobs; the running ones finish."""
        require_own_worker(worker_id)
        services().store.workers.drain(worker_id)
        return services().store.workers.get(worker_id)


@blp.route("/<string:worker_id>")
class Worker(MethodView):
    @require("admin", "worker")
    @documents_errors(blp, 401, 403, 404, 409, 503)
    @blp.response(204)
    def delete(self, worker_id: str) -> Any:
        """Deregister a worker that holds no job (drain it first); 409 while it does."""
        require_own_worker(worker_id)
        services().store.workers.deregister(worker_id)
        services().tokens.forget_worker(worker_id)
        return ""


@blp.route("/<string:worker_id>/assignments")
class Assignments(MethodView):
    @require("worker")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.arguments(AssignmentArgsSchema(), location="query")
    @blp.response(200, AssignmentListSchema)
    @blp.alt_response(204, description="nothing was assigned within `wait` seconds")
    def get(self, args: dict[str, Any], worker_id: str) -> Any:
        """Long-poll: returns as soon as jobs are newly assigned to this worker."""
        require_own_worker(worker_id)
        jobs = services().store.workers.pop_assigned(worker_id, args["wait"])
        if not jobs:
            return "", 204
        return {"jobs": jobs}


def _short_host(hostname: str) -> str:
    name = hostname.split(".")[0].lower() or socket.gethostname()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:40]
