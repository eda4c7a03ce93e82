"""The allowed-images patterns (shared/images.py), the one rule the API and agent share."""

import pytest

from shared.images import image_allowed

PATTERNS = ("jobyard/*", "registry.local/team/*:v*", "alpine:3.20")


@pytest.mark.parametrize(
    "image",
    ["jobyard/busybox:latest", "jobyard/busybox", "registry.local/team/app:v2", "alpine:3.20"],
)
def test_an_image_matching_a_pattern_is_allowed(image: str) -> None:
    assert image_allowed(image, PATTERNS)


@pytest.mark.parametrize(
    "image",
    [
        "busybox:latest",
        "evil.io/jobyard/busybox",  # a pattern anchors at the start
        "registry.local/team/app:latest",  # the tag must start with v
        "registry.local/other/app:v2",
        "alpine:3.21",
        "Jobyard/busybox",  # case-sensitive, as image names are
    ],
)
def test_an_image_matching_no_pattern_is_refused(image: str) -> None:
    assert not image_allowed(image, PATTERNS)


def test_without_patterns_every_image_is_allowed() -> None:
    assert image_allowed("anything/at:all", ())
