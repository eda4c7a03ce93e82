"""The dashboard: four pages (overview, jobs, a job, workers) and their static files.

A page is a shell: the server renders who is looking and which page it is, and the page's
script reads everything else from the same JSON API a `curl` user calls, with the session
cookie, and follows the change feed (static/live.js). So a page shows nothing the API would
not show that person, and no token ever reaches a page: the cookie is HttpOnly.
"""

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, redirect, render_template, request

from api.page_headers import PAGE_HEADERS
from api.session import page_principal
from shared.states import TERMINAL_STATE_NAMES, USER_RETRYABLE_STATES, JobState

STATIC_URL_PATH = "/static"
# The /docs page's Swagger UI, vendored (static/vendor/swagger-ui/README.md): never a CDN.
SWAGGER_UI_URL = f"{STATIC_URL_PATH}/vendor/swagger-ui/"

blp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path=STATIC_URL_PATH,
)

# The pages, in the navigation's order: endpoint -> title.
NAVIGATION = {"web.overview": "Overview", "web.jobs": "Jobs", "web.workers": "Workers"}


@blp.app_context_processor
def job_states() -> dict[str, Any]:
    """The state rules the pages' scripts need, from shared/states.py (base.html puts them
    on <body>): which states end a job, and which a user may retry from."""
    return {
        "job_states": [state.value for state in JobState],
        "terminal_states": TERMINAL_STATE_NAMES,
        "retryable_states": sorted(state.value for state in USER_RETRYABLE_STATES),
    }


@blp.get("/")
def overview() -> Any:
    return _page("overview.html", "Overview")


@blp.get("/jobs")
def jobs() -> Any:
    return _page("jobs.html", "Jobs")


@blp.get("/jobs/<string:job_id>")
def job(job_id: str) -> Any:
    return _page("job.html", f"Job {job_id}", job_id=job_id)


@blp.get("/workers")
def workers() -> Any:
    return _page("workers.html", "Workers")


def _page(template: str, title: str, **context: Any) -> Any:
    principal = page_principal()
    if principal is None:
        # The path, never the query's values: a page's address holds no secret, but the
        # login page is not the place to echo arbitrary text back either.
        return redirect(f"/login?next={quote(request.path)}", code=303)
    page = render_template(
        template, title=title, principal=principal, navigation=NAVIGATION, **context
    )
    return Response(page, headers=PAGE_HEADERS, mimetype="text/html")
