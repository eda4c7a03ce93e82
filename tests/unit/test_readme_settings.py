"""The README's configuration table is the settings of shared/config.py: every variable
Config reads has a row, every row names a variable Config reads, and a default the table
gives as a value is the one Config has."""

import re
from dataclasses import MISSING, fields
from pathlib import Path

from shared.config import Config

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(JOBYARD_[A-Z0-9_]+)` \| (.*?) \|", re.MULTILINE)


def table() -> dict[str, str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return dict(ROW.findall(section))


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    documented = set(table())
    read = {setting.metadata["env"] for setting in fields(Config)}
    assert read - documented == set(), "settings missing from the README's table"
    assert documented - read == set(), "rows for settings Config does not read"


def test_the_defaults_the_table_gives_are_configs() -> None:
    by_env = {setting.metadata["env"]: setting for setting in fields(Config)}
    checked = 0
    for env, cell in table().items():
        value = re.fullmatch(r"`([^`]*)`", cell.strip())
        setting = by_env[env]
        if value is None or setting.default is MISSING:
            continue  # "(none)", "(all logical CPUs)": said in words
        assert setting.metadata["parse"](value.group(1)) == setting.default, env
        checked += 1
    assert checked >= 30
