"""Which role each API route needs, as the OpenAPI document states it.

The statement is read from the routes' dependency graphs rather than written by hand: a route
that depends on ``admin_caller`` is marked ``x-required-role: admin`` (and documents its 403),
every other one ``viewer``. So the document cannot claim a guard that a route does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from stockade.model import ADMIN, VIEWER
from stockade.web import api
from stockade.web.api import admin_caller

ROLE_KEY = "x-required-role"
REFUSED = {
    "description": "a viewer's session (the route needs the admin role) or a missing or wrong "
    "CSRF token; `detail` says which"
}


def depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether ``call`` is among the dependencies of ``dependant``, however deep."""
    return dependant.call is call or any(depends_on(d, call) for d in dependant.dependencies)


def route_roles(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], str]:
    """``(method, path) → role`` of the API routes among ``routes``."""
    roles: dict[tuple[str, str], str] = {}
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            role = ADMIN if depends_on(route.dependant, admin_caller) else VIEWER
            for method in route.methods or ():
                roles[method.lower(), route.path_format] = role
    return roles


def openapi_with_roles(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the role each API operation needs (idempotent: FastAPI
    caches the document, this marks it again in place). An operation of a route outside the
    API router gets no mark; the tests require one on every operation."""
    doc = app.openapi()
    for (method, path), role in route_roles(api.router.routes).items():
        op = doc["paths"][path][method]
        op[ROLE_KEY] = role
        if role == ADMIN:
            op["responses"]["403"] = REFUSED
            if "admin role" not in op.get("description", ""):
                op["description"] = (op.get("description", "") + " Needs the admin role.").strip()
    return doc
