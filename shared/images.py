"""Which images jobs may use: the one rule, used by the API at submit and by the agent
before it creates a container (so an agent with a stricter list than the API's refuses too)."""

from fnmatch import fnmatchcase


def image_allowed(image: str, patterns: tuple[str, ...]) -> bool:
    """Whether the image matches one of the patterns (fnmatch globs such as `jobyard/*` or
    `registry.local/team/*:v*`, case-sensitive as image names are); no patterns: any image.
    `*` also crosses `/` and `:`, so `jobyard/*` admits every tag of every jobyard image."""
    return not patterns or any(fnmatchcase(image, pattern) for pattern in patterns)
