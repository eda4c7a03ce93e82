"""People's access tokens: an admin creates them (each shown once), lists and revokes them."""

import secrets
from typing import Any

from flask.views import MethodView

from api.auth import require
from api.errors import documents_errors
from api.extensions import services
from api.guards import Blueprint
from api.token_cache import TOKEN_CACHE_S
from shared.schemas.tokens import TokenCreatedSchema, TokenCreateSchema, TokenListSchema

blp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens", description="Access tokens")


@blp.route("")
class Tokens(MethodView):
    @require("admin")
    @documents_errors(blp, 400, 401, 403, 409, 413, 422, 503)
    @blp.arguments(TokenCreateSchema())
    @blp.response(201, TokenCreatedSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a token for a person: a user, or an admin. The token is in this answer
        only; the jobs it submits are owned by its name."""
        token = secrets.token_urlsafe(32)
        record = services().store.tokens.create(body["name"], body["role"], token)
        return {"name": record["name"], "role": record["role"], "token": token}

    @require("admin")
    @documents_errors(blp, 401, 403, 503)
    @blp.response(200, TokenListSchema)
    def get(self) -> Any:
        """People's tokens: name, role, created and last used; never a token. Worker
        tokens are not listed (see /api/v1/workers)."""
        return {"tokens": services().store.tokens.people()}


@blp.route("/<string:name>")
class Token(MethodView):
    @require("admin")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.response(204)
    @blp.doc(
        description="Refused at once by this API process, and by every other one within "
        f"{TOKEN_CACHE_S:g} s (how long each remembers a token it has checked)."
    )
    def delete(self, name: str) -> Any:
        """Revoke a person's token; its name may be given to a new one."""
        services().tokens.forget(services().store.tokens.revoke(name))
        return ""
