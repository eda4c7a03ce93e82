"""The ./.jobyard/credentials file that `jobyard up` writes and every client command reads.

One KEY=VALUE per line (shell-quoted where needed, so `. .jobyard/credentials` works in a
shell), mode 600. Environment variables win over the file, and the file's token is only used
for the file's own API URL, so a local admin token is never sent to another server.
"""

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

STATE_DIR = Path(".jobyard")
CREDENTIALS_FILE = STATE_DIR / "credentials"


def read_credentials(path: Path = CREDENTIALS_FILE) -> dict[str, str]:
    """The file's KEY=VALUE pairs; an absent or unreadable file gives {}."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("export ").strip()
        key, sep, raw = line.partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            values[key.strip()] = "".join(shlex.split(raw))
        except ValueError:
            values[key.strip()] = raw.strip()
    return values


def write_credentials(values: Mapping[str, str], path: Path = CREDENTIALS_FILE) -> None:
    """Replace the file atomically; it is created with mode 600 and never readable by others."""
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def client_environment(env: Mapping[str, str], stored: Mapping[str, str]) -> dict[str, str]:
    """The environment a client command configures itself from: env first, then the file."""
    merged = dict(env)
    env_url = env.get("JOBYARD_API_URL", "")
    file_url = stored.get("JOBYARD_API_URL", "")
    if not env_url and file_url:
        merged["JOBYARD_API_URL"] = file_url
    same_server = not env_url or env_url.rstrip("/") == file_url.rstrip("/")
    if not env.get("JOBYARD_TOKEN") and same_server and stored.get("JOBYARD_TOKEN"):
        merged["JOBYARD_TOKEN"] = stored["JOBYARD_TOKEN"]
    return merged
