"""What blueprints share, bound to each app in create_app: the services (configuration and
store). Blueprints never import the app module."""

from dataclasses import dataclass

from flask import current_app

from shared.config import Config
from shared.store import Store


@dataclass(frozen=True)
class Services:
    config: Config
    store: Store


def services() -> Services:
    found: Services = current_app.extensions["jobyard"]
    return found
