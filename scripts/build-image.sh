#!/bin/sh
# Build jobyard/busybox:latest, the small test image: FROM scratch plus Debian's static
# busybox with its applets linked into /bin. Installs nothing and never pulls (there is no
# registry here); quick when the image already holds this very busybox binary.
set -eu

IMAGE="${JOBYARD_TEST_IMAGE:-jobyard/busybox:latest}"
BUSYBOX="${BUSYBOX:-/usr/bin/busybox}"

die() {
    echo "build-image.sh: $*" >&2
    exit 1
}

[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing: install the busybox-static package (apt-get install -y busybox-static)"

# A dynamically linked busybox would not run in an empty (scratch) image.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install busybox-static instead of busybox"
fi

command -v docker >/dev/null 2>&1 || die "the docker command is missing"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (start dockerd first)"

DIGEST="$(sha256sum "$BUSYBOX" | cut -d' ' -f1)"
BUILT="$(docker image inspect --format '{{ index .Config.Labels "jobyard.busybox.sha256" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$BUILT" = "$DIGEST" ]; then
    echo "$IMAGE is up to date"
    exit 0
fi

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT INT TERM
cp "$BUSYBOX" "$CONTEXT/busybox"
cat >"$CONTEXT/Dockerfile" <<EOF
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
LABEL jobyard.busybox.sha256="$DIGEST"
ENV PATH=/bin
CMD ["/bin/sh"]
EOF

# The legacy builder is enough for this Dockerfile and needs no buildx plugin.
# Its deprecation notice is noise, so the output is shown only when the build fails.
if ! LOG="$(DOCKER_BUILDKIT=0 docker build --quiet --tag "$IMAGE" "$CONTEXT" 2>&1)"; then
    echo "$LOG" >&2
    die "docker build of $IMAGE failed"
fi
echo "built $IMAGE"
