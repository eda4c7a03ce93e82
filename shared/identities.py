"""Who a token may be: the names the configured tokens act under, and the roles of people's
tokens. No schema library here: the `jobyard` command reads these and starts fast."""

# The names the configured tokens act under (api/auth.py). A person given one would own,
# and so see, the jobs of that identity: refused whatever their case.
ADMIN_NAME = "admin"
JOIN_NAME = "join"
RESERVED_NAMES = frozenset({ADMIN_NAME, JOIN_NAME})
# The roles a person's token may have (the others, worker and join, are no person's): the
# ones `jobyard tokens create` offers and the ones that may log in to the dashboard.
PERSON_ROLES = ("user", "admin")
