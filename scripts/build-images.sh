#!/usr/bin/env bash
# `make images`: jobyard/api and jobyard/worker from local parts only, for hosts that reach
# no image registry: a base image made from Debian's packages (debootstrap, then docker
# import; made once, about a minute), and jobyard with its dependencies as wheels built here,
# which the Dockerfiles install without network. Where a registry is reachable, the same
# Dockerfiles build on python:3.11-slim instead:
#   JOBYARD_BASE_IMAGE=python:3.11-slim scripts/build-images.sh
# (The compose file's redis service needs redis-server in the base: keep jobyard/base for it.)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${JOBYARD_BASE_IMAGE:-jobyard/base:bookworm}"
TAG="${JOBYARD_IMAGE_TAG:-latest}"
PYTHON="${PYTHON:-.venv/bin/python}"
SUITE=bookworm
MIRROR="${JOBYARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3 and venv for jobyard; redis-server for the compose file's redis service.
PACKAGES=python3,python3-venv,redis-server

step() { printf '== %s\n' "$*"; }

if [ "$BASE_IMAGE" = jobyard/base:bookworm ] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    step "base image $BASE_IMAGE (debootstrap $SUITE from $MIRROR)"
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >/dev/null
    # No package cache or lists in the image: nothing installs in it later.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
fi

step "wheels of jobyard and its dependencies (build/wheels)"
rm -rf build/wheels
# async-timeout: redis-py needs it on Pythons before 3.11.3, such as Debian 12's 3.11.2,
# which the host's newer Python does not ask for.
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir build/wheels . \
    "async-timeout>=4.0.3"

for part in api worker; do
    step "jobyard/$part:$TAG on $BASE_IMAGE"
    docker build --quiet --file "Dockerfile.$part" --build-arg "BASE=$BASE_IMAGE" \
        --tag "jobyard/$part:$TAG" . >/dev/null
done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^jobyard/(api|worker|base)' || true
