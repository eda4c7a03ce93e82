"""What blueprints share, bound to each app in create_app: the services (configuration,
store and token cache). Blueprints never import the app module."""

from dataclasses import dataclass

from flask import current_app

from api.token_cache import TokenCache
from shared.config import Config
from shared.store import Store


@dataclass(frozen=True)
class Services:
    config: Config
    store: Store
    tokens: TokenCache


def services() -> Services:
    found: Services = current_app.extensions["jobyard"]
    return found
