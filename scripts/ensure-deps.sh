#!/usr/bin/env bash
# Install the Debian packages jobyard needs, only those that are missing.
# Usage: scripts/ensure-deps.sh [redis] [docker] [busybox] [chromium] [promtool] [debootstrap]
#        [compose] [wrk]   (default: all but wrk)
# Runs `apt-get update` at most once, and only when something is to be installed;
# uses sudo when not root. Used by the Makefile (make up, make test) and by .ci/run.
set -euo pipefail

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(redis docker busybox chromium promtool debootstrap compose)

missing=()
for dep in "${want[@]}"; do
    case "$dep" in
        redis) command -v redis-server >/dev/null || missing+=(redis-server) ;;
        docker) { command -v docker >/dev/null && command -v dockerd >/dev/null; } || missing+=(docker.io) ;;
        # The test image is FROM scratch: it needs the statically linked busybox.
        busybox) dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
                     || missing+=(busybox-static) ;;
        chromium) command -v chromium >/dev/null || missing+=(chromium) ;;
        # Prometheus's own checker of /metrics (tests/e2e/test_metrics_scrape.py).
        promtool) command -v promtool >/dev/null || missing+=(prometheus) ;;
        # `make images` (a base image from Debian's packages) and the compose test.
        debootstrap) command -v debootstrap >/dev/null || missing+=(debootstrap) ;;
        compose) command -v docker-compose >/dev/null || missing+=(docker-compose) ;;
        # The HTTP load generator of `make bench` (bench/api_load.py).
        wrk) command -v wrk >/dev/null || missing+=(wrk) ;;
        *) echo "ensure-deps: unknown dependency '$dep' (redis, docker, busybox, chromium, promtool, debootstrap, compose, wrk)" >&2; exit 2 ;;
    esac
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "ensure-deps: missing ${missing[*]}, and this is not a Debian-like system; install them by hand" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "ensure-deps: missing ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "ensure-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ensure-deps: installed ${missing[*]}"
