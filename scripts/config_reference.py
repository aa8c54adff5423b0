"""Write docs/configuration.md from the configuration model's field descriptions.

Run `python scripts/config_reference.py` after changing gated/config.py; a test fails when the
document is out of date.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from gated.config import SiteConfig

OUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is typing.Literal:
        return " / ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _models(model: type[BaseModel], seen: list[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.append(model)
    for field in model.model_fields.values():
        for candidate in _flatten(field.annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                _models(candidate, seen)


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _flatten(arg)]


def render() -> str:
    models: list[type[BaseModel]] = []
    _models(SiteConfig, models)
    out = [
        "# Configuration reference",
        "",
        "Generated from `gated/config.py` by `scripts/config_reference.py`; do not edit.",
        "The site configuration is one YAML file whose top level is `SiteConfig`. Unknown keys",
        "are errors; `gated check-config FILE` lists every error with its line, and `gated run`",
        "refuses to start on an invalid file. `config/example.yaml` is a complete example.",
        "",
    ]
    for model in models:
        out.append(f"## {model.__name__}")
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and not doc[0].startswith("Base for"):
            out += ["", doc[0]]
        out += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if field.default is not PydanticUndefined:
                default = f"`{field.default!r}`"
            elif field.default_factory is not None:
                default = "(section defaults)"
            else:
                default = "**required**"
            description = (field.description or "").replace("|", "\\|")
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {default} | {description} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the document is stale"
    )
    args = parser.parse_args()
    text = render()
    if args.check:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
