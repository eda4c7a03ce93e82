"""`jobyard submit --file job.yaml`: a job file holds the fields of the API's submission
(`image`, `command`, `resources`, `env`, ...), in YAML or JSON (which YAML reads too), the
habit of `nomad job run` and `kubectl apply -f`.

The file is checked against the schema the API itself loads a submission with, so a bad
file is refused before anything is sent, with a message naming the field and its line; an
error only the server can find (a limit of its configuration) comes back as the same kind
of message.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FieldPath = tuple[str, ...]


class JobFileError(Exception):
    """A job file that cannot be read, or that is not a valid submission: the message says
    where, one problem a line."""


@dataclass(frozen=True)
class JobFile:
    path: Path
    fields: dict[str, Any]
    lines: dict[FieldPath, int]  # where each field's key is, 1-based

    def problems(self, messages: Mapping[str, Any]) -> str:
        """marshmallow's error messages as `job.yaml:LINE: field.sub: message` lines."""
        return "\n".join(
            f"{self.path}:{self._line(path)}: {'.'.join(path) or '(file)'}: {message}"
            for path, message in _flatten(messages)
        )

    def _line(self, path: FieldPath) -> int:
        # The deepest part of the path the file has: an unknown nested field's own key, a
        # missing field's mapping, a bad item's list.
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def read(path: Path, max_bytes: int) -> JobFile:
    """The file's fields, checked against the API's submission schema."""
    try:
        if path.stat().st_size > max_bytes:
            raise JobFileError(f"{path}: larger than {max_bytes} bytes, the API's request limit")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise JobFileError(f"{path}: cannot read it: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        fields = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise JobFileError(f"{where}: not YAML or JSON: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(fields, dict) or not isinstance(node, yaml.MappingNode):
        raise JobFileError(f"{path}: a job file is a mapping of the submission's fields")
    job_file = JobFile(path, fields, dict(_key_lines(node, ())))
    check(job_file, fields)
    return job_file


def check(job_file: JobFile, body: dict[str, Any]) -> None:
    """Refuse `body` as the API would, naming the file's lines."""
    from shared.schemas.jobs import JobSubmitSchema

    messages = JobSubmitSchema().validate(body)
    if messages:
        raise JobFileError(job_file.problems(messages))


def _key_lines(node: yaml.Node, path: FieldPath) -> Iterator[tuple[FieldPath, int]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value))
            yield here, key.start_mark.line + 1
            yield from _key_lines(value, here)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            yield here, item.start_mark.line + 1
            yield from _key_lines(item, here)


def _flatten(messages: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from _flatten(value, (*path, str(key)))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        yield path, " ".join(messages)
    else:
        yield path, str(messages)
