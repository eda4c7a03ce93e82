"""The Docker image reference grammar (github.com/distribution/reference, regexp.go):
`[domain[:port]/]path[:tag][@digest]`. One regex for the API's `image` field and for
JOBYARD_DEFAULT_IMAGE, so that nothing a job names reaches the Docker daemon (or a log line,
or a shell a user pastes it into) unless Docker itself would read it as an image name."""

import re

# The grammar's own limit on a reference's name (domain and path), NameTotalLengthMax.
MAX_NAME_LENGTH = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# ASCII: \w is [A-Za-z0-9_] as in Go's regexp, not every letter of Unicode. fullmatch, not
# `$`, which would let a trailing newline through.
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)

INVALID = (
    "not a Docker image reference: [registry[:port]/]name[:tag][@digest], the name in "
    "lowercase letters, digits and separators (. _ __ -)"
)


def image_reference_error(text: str) -> str | None:
    """Why `text` is not an image reference Docker would accept; None when it is one."""
    match = REFERENCE.fullmatch(text)
    if match is None:
        return INVALID
    if len(match["name"]) > MAX_NAME_LENGTH:
        return f"the image name is longer than {MAX_NAME_LENGTH} characters"
    return None
