#!/usr/bin/env bash
# Make sure a Docker daemon answers: start dockerd in the background when none does,
# then wait for it (60 s at most). Exits non-zero when no daemon can be had.
# Used by the Makefile (make up, make test) and by .ci/run.
set -euo pipefail

timeout_s=${DOCKERD_TIMEOUT_S:-60}
log=${DOCKERD_LOG:-${TMPDIR:-/tmp}/jobyard-dockerd.log}

if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null; then
    echo "ensure-dockerd: dockerd is not installed (scripts/ensure-deps.sh docker)" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "ensure-dockerd: need root or sudo to start dockerd" >&2; exit 1; }
    sudo=(sudo)
fi

if pgrep -x dockerd >/dev/null; then
    echo "ensure-dockerd: dockerd is running but does not answer yet; waiting"
else
    echo "ensure-dockerd: starting dockerd (log: $log)"
    "${sudo[@]}" sh -c "setsid nohup dockerd >'$log' 2>&1 </dev/null &"
fi

for _ in $(seq "$((timeout_s * 2))"); do
    if docker info >/dev/null 2>&1; then
        echo "ensure-dockerd: Docker daemon is up"
        exit 0
    fi
    sleep 0.5
done

echo "ensure-dockerd: no Docker daemon answered within ${timeout_s} s; last lines of $log:" >&2
tail -n 20 "$log" >&2 2>/dev/null || true
exit 1
