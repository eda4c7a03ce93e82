"""User endpoints for jobs: submit, list, export, get, events, output, cancel."""

import secrets
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView

from api import export
from api.auth import current, require
from api.errors import Forbidden, Invalid, JobNotFound, documents_errors
from api.extensions import services
from api.guards import Blueprint
from shared.images import image_allowed
from shared.resources import Resources, cpu_to_millicores
from shared.schemas.jobs import (
    EventListSchema,
    JobBatchSchema,
    JobBatchSubmitSchema,
    JobExportArgsSchema,
    JobListArgsSchema,
    JobListSchema,
    JobSchema,
    JobSubmitSchema,
    OutputArgsSchema,
    OutputSchema,
)
from shared.states import TERMINAL_STATES
from shared.store.jobs import Submission

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Submit and watch jobs")

SPEC_FIELDS = (
    "name", "image", "command", "env", "timeout_s", "priority", "labels", "network",
    "constraints", "queue_timeout_s", "max_retries",
)
MAX_IDEMPOTENCY_KEY = 200


def _visible_job(job_id: str) -> dict[str, Any]:
    """The job, if the caller may see it; another user's job is as good as absent."""
    job = services().store.jobs.get(job_id)
    principal = current()
    if not principal.is_admin and job["owner"] != principal.name:
        raise JobNotFound(f"no job {job_id}")
    return job


def _listed_owner(asked: str | None) -> str | None:
    """Whose jobs a list shows (None: everyone's). A user's own, always: naming another
    owner is refused rather than ignored, so a client never takes their own list for
    someone else's."""
    principal = current()
    if principal.is_admin:
        return asked
    if asked is not None and asked != principal.name:
        raise Forbidden("a user may list only their own jobs")
    return principal.name


def _request_errors(args: dict[str, Any]) -> dict[str, Any]:
    """What in one submission goes past this installation's limits ({} when nothing)."""
    config = services().config
    res = args["resources"]
    too_much: dict[str, Any] = {}
    if res["cpu"] > config.max_job_cpu:
        too_much["cpu"] = [f"at most {config.max_job_cpu:g} (JOBYARD_MAX_JOB_CPU)"]
    if res["memory_mb"] > config.max_job_memory_mb:
        too_much["memory_mb"] = [f"at most {config.max_job_memory_mb} (JOBYARD_MAX_JOB_MEMORY_MB)"]
    errors: dict[str, Any] = {"resources": too_much} if too_much else {}
    if not image_allowed(args["image"], config.allowed_images):
        errors["image"] = [f"must match one of {', '.join(config.allowed_images)}"]
    return errors


def _submission(args: dict[str, Any], raw: Any, idempotency_key: str | None) -> Submission:
    """The store's submission from one validated body (`raw`: the same body as sent)."""
    return Submission(
        secrets.token_hex(8),
        {name: args[name] for name in SPEC_FIELDS},
        Resources(
            cpu_to_millicores(args["resources"]["cpu"]),
            args["resources"]["memory_mb"],
            args["resources"]["gpus"],
        ),
        args["priority"],
        idempotency_key,
        cpu_only=_names_no_memory(raw),
    )


def _names_no_memory(raw: Any) -> bool:
    """Did the submission leave memory_mb out? (The schema fills in the default, so ask the
    body as sent.)"""
    resources = raw.get("resources") if isinstance(raw, dict) else None
    return not isinstance(resources, dict) or "memory_mb" not in resources


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def _with_default_image(args: dict[str, Any]) -> dict[str, Any]:
    args["image"] = args["image"] or services().config.default_image
    return args


@blp.route("")
class Jobs(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 400, 401, 403, 413, 503)
    @blp.arguments(JobSubmitSchema())
    @blp.response(201, JobSchema)
    def post(self, args: dict[str, Any]) -> Any:
        """Submit a job; an Idempotency-Key header makes a resubmission return the first."""
        errors = _request_errors(_with_default_image(args))
        if errors:
            raise Invalid("the job asks for what this installation refuses", {"json": errors})
        submission = _submission(args, request.get_json(silent=True), _idempotency_key())
        [(job, created)] = services().store.jobs.submit_many(current().name, [submission])
        return job, 201 if created else 200

    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.arguments(JobListArgsSchema(), location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Jobs newest first, with counts per state: a user's own; an admin's of every owner,
        or of `owner`."""
        filters = _filters(args)
        store = services().store
        jobs, next_cursor = store.jobs.query(
            **filters, limit=args["limit"], cursor=args.get("cursor")
        )
        return {
            "jobs": jobs,
            "next_cursor": next_cursor,
            "counts": store.jobs.counts(filters["owner"]),
        }


@blp.route("/batch")
class JobBatch(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 400, 401, 403, 413, 503)
    @blp.arguments(JobBatchSubmitSchema())
    @blp.response(201, JobBatchSchema)
    def post(self, args: dict[str, Any]) -> Any:
        """Submit 1 to 1,000 jobs at once, checked as a whole (422 names each refused one by
        its index) and stored in one atomic step. With an Idempotency-Key header, each job
        is the key's own: a resubmission returns the first jobs (200)."""
        items = [_with_default_image(item) for item in args["jobs"]]
        errors = {n: e for n, item in enumerate(items) if (e := _request_errors(item))}
        if errors:
            raise Invalid(
                "some jobs ask for what this installation refuses", {"json": {"jobs": errors}}
            )
        raw = request.get_json()["jobs"]  # parsed and checked by the schema already
        key = _idempotency_key()
        submissions = [
            _submission(item, raw[n], f"{key}[{n}]" if key else None)
            for n, item in enumerate(items)
        ]
        stored = services().store.jobs.submit_many(current().name, submissions)
        created = any(new for _, new in stored)
        return {"jobs": [job for job, _ in stored]}, 201 if created else 200


def _filters(args: dict[str, Any]) -> dict[str, Any]:
    """The store query's filters from a list's or an export's arguments."""
    label = tuple(args["label"].split("=", 1)) if "label" in args else None
    return {
        "owner": _listed_owner(args.get("owner")),
        "state": args.get("state"),
        "worker": args.get("worker"),
        "label": label,
    }


EXPORT_DOC = {
    "responses": {
        "200": {
            "description": "every matching job, newest first, as a download: CSV with a "
            "header line (cells a spreadsheet would run as formulas start with '), or one "
            "JSON array of jobs",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": JobSchema}},
            },
        }
    }
}


@blp.route("/export")
class JobExport(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.arguments(JobExportArgsSchema(), location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]) -> Response:
        """The list's jobs (same filters, same owner rule), all of them, as a file."""
        filters = _filters(args)
        jobs = export.matching_jobs(services().store.jobs, filters)
        kind = args["format"]
        body = export.as_csv(jobs) if kind == "csv" else export.as_json(jobs)
        name = export.filename(filters, kind)
        return Response(
            stream_with_context(body),
            mimetype="text/csv" if kind == "csv" else "application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


@blp.route("/<string:job_id>")
class Job(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.response(200, JobSchema)
    def get(self, job_id: str) -> Any:
        return _visible_job(job_id)

    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 409, 503)
    @blp.response(204)
    def delete(self, job_id: str) -> None:
        """A finished job, with its output and history; other states 409."""
        _visible_job(job_id)
        services().store.jobs.delete(job_id, actor=current().name)


@blp.route("/<string:job_id>/events")
class JobEvents(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.response(200, EventListSchema)
    def get(self, job_id: str) -> Any:
        """The job's transitions, oldest first."""
        _visible_job(job_id)
        return {"events": services().store.jobs.events(job_id)}


@blp.route("/<string:job_id>/cancel")
class JobCancel(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 409, 503)
    @blp.response(200, JobSchema)
    def post(self, job_id: str) -> Any:
        """QUEUED ends CANCELLED at once; ASSIGNED/RUNNING is stopped by its agent."""
        _visible_job(job_id)
        services().store.jobs.cancel(job_id, actor=current().name)
        return services().store.jobs.get(job_id)


@blp.route("/<string:job_id>/retry")
class JobRetry(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 409, 503)
    @blp.response(200, JobSchema)
    def post(self, job_id: str) -> Any:
        """FAILED or CANCELLED: queued again, as a new attempt; other states 409."""
        _visible_job(job_id)
        services().store.jobs.retry(job_id, actor=current().name)
        return services().store.jobs.get(job_id)


@blp.route("/<string:job_id>/output")
class JobOutput(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.arguments(OutputArgsSchema(), location="query")
    @blp.response(200, OutputSchema)
    def get(self, args: dict[str, Any], job_id: str) -> Any:
        """Output chunks numbered above `offset`, stdout and stderr in the order read."""
        job = _visible_job(job_id)
        chunks = services().store.jobs.read_output(job_id, args["offset"], args["limit"])
        next_offset = chunks[-1]["offset"] if chunks else args["offset"]
        ended = job["state"] in TERMINAL_STATES
        return {
            "chunks": chunks,
            "next_offset": next_offset,
            "complete": ended and len(chunks) < args["limit"],
        }
