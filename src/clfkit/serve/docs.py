"""``/docs``: Swagger UI from files on this machine, never from a CDN.

FastAPI's default docs page loads Swagger UI from a CDN, which fails offline and sends every visitor's browser
to a third party.  The assets come from the PyPI package ``swagger-ui-py`` (Swagger UI 5, which reads the
OpenAPI 3.1 document FastAPI writes); only its ``static/`` folder is served, the package itself is never
imported.  Without it, ``/docs`` says how to get it and ``/openapi.json`` still works.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

__all__ = ["ASSETS_URL", "swagger_assets", "docs_page"]

ASSETS_URL = "/docs/assets"


def swagger_assets() -> Path | None:
    """The folder holding swagger-ui-bundle.js and swagger-ui.css, or None when swagger-ui-py is missing."""
    try:
        spec = importlib.util.find_spec("swagger_ui")  # finds the folder without running the package
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "static"
        if (folder / "swagger-ui-bundle.js").is_file() and (folder / "swagger-ui.css").is_file():
            return folder
    return None


def docs_page(title: str, openapi_url: str, assets: Path | None) -> HTMLResponse:
    if assets is None:
        return HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>API docs unavailable</title>"
            "<p>The interactive API docs need the Swagger UI files of the <code>swagger-ui-py</code> package "
            "(<code>pip install 'clfkit[serve]'</code>); this server loads nothing from the internet. The API "
            f"description is at <a href='{openapi_url}'>{openapi_url}</a>.</p></html>", status_code=503)
    return get_swagger_ui_html(openapi_url=openapi_url, title=title,
                               swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")
