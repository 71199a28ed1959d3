"""The web dashboard: a JSON API (with its OpenAPI document) and the server-rendered pages that
use it, behind a login. ``stockade web`` serves it alone; ``stockade run`` serves it when
``web.enabled`` is set."""
