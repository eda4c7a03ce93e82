"""Worker endpoints about one attempt of a job: start, output, result. Every call names the
attempt; one that is no longer current answers 409 and the agent kills its container."""

from typing import Any

from flask.views import MethodView

from api.auth import current, require
from api.errors import documents_errors
from api.extensions import services
from api.guards import Blueprint
from shared.schemas.workers import (
    OutputAnswerSchema,
    OutputPostSchema,
    ResultSchema,
    TransitionSchema,
)
from shared.store.jobs import Backoff

blp = Blueprint(
    "attempts",
    __name__,
    url_prefix="/api/v1/jobs/<string:job_id>/attempts/<int:attempt>",
    description="What a worker reports about the attempt it runs",
)


def _worker_id() -> str:
    worker_id = current().worker_id
    assert worker_id is not None  # require("worker") guarantees it
    return worker_id


@blp.route("/start")
class Start(MethodView):
    @require("worker")
    @documents_errors(blp, 401, 403, 404, 409, 503)
    @blp.response(200, TransitionSchema)
    def post(self, job_id: str, attempt: int) -> Any:
        """ASSIGNED -> RUNNING; repeating it changes nothing."""
        return services().store.jobs.start(job_id, _worker_id(), attempt)


@blp.route("/output")
class Output(MethodView):
    @require("worker")
    @documents_errors(blp, 400, 401, 403, 404, 409, 413, 503)
    @blp.arguments(OutputPostSchema())
    @blp.response(200, OutputAnswerSchema)
    def post(self, body: dict[str, Any], job_id: str, attempt: int) -> Any:
        """Append chunks (a seq seen before is ignored); answers whether to cancel."""
        cancel = services().store.jobs.append_output(
            job_id, _worker_id(), attempt, body["chunks"], services().config.max_output_bytes
        )
        return {"cancel": cancel}


@blp.route("/result")
class Result(MethodView):
    @require("worker")
    @documents_errors(blp, 400, 401, 403, 404, 409, 413, 503)
    @blp.arguments(ResultSchema())
    @blp.response(200, TransitionSchema)
    def post(self, body: dict[str, Any], job_id: str, attempt: int) -> Any:
        """The attempt ended; repeating it changes nothing."""
        config = services().config
        backoff = Backoff(config.retry_backoff_s, config.retry_backoff_max_s)
        return services().store.jobs.finish(job_id, _worker_id(), attempt, backoff=backoff, **body)
