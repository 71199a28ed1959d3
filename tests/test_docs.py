"""Every setting and every command is documented in the README."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from stockade.cli.main import build_parser
from stockade.config.schema import Config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    keys = _keys(Config)
    assert len(keys) > 20
    missing = [k for k in keys if f"`{k}`" not in README]
    assert missing == []


def test_every_command_is_documented() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        nested = [a for a in p._actions if a.dest.endswith("_command")]
        names = (
            [f"stockade {name} {n}" for n in nested[0].choices] if nested else [f"stockade {name}"]
        )
        for n in names:
            assert f"`{n}" in README, n


def test_readme_starts_with_the_two_commands() -> None:
    lines = [ln for ln in README.splitlines() if ln.strip()]
    assert lines[1] == "```sh"
    assert lines[2].startswith("sudo ./scripts/quickstart")
    assert lines[3].startswith("sudo ./scripts/test")
    assert lines[4] == "```"
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "./scripts/test" in ci
