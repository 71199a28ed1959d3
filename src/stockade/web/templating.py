"""The Jinja2 environment of the pages (autoescaped), with the filters they use."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from stockade.web.timeparse import iso

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["iso"] = iso
