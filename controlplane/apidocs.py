"""The interactive API page at /api/docs (Swagger UI over /api/openapi.json).

Its scripts come from the swagger-ui-bundle package and are served by the control
plane itself, so the page works on a network that cannot reach a CDN.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from swagger_ui_bundle import swagger_ui_path

#: Where the page's scripts and styles are served.
ASSETS_URL = "/api/docs/assets/"
#: Every request may carry the API token; the page's Authorize button sets it.
BEARER_SCHEME = {"type": "http", "scheme": "bearer",
                 "description": "The control plane's CALLPLANE_TOKEN, when it has one."}


def api_docs_config() -> dict:
    """flask-smorest settings for the document and its page."""
    return {
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,
        "OPENAPI_SWAGGER_UI_CONFIG": {"tryItOutEnabled": True},  # no token kept in localStorage
        "API_SPEC_OPTIONS": {
            "security": [{"bearerAuth": []}, {}],  # {}: a server without a token needs none
            "components": {"securitySchemes": {"bearerAuth": BEARER_SCHEME}},
            "info": {"description": (
                "The control plane of callplane: create calls of stages, wait for them, "
                "read their call trees and runs, retry and cancel them. When the server has "
                "a token (CALLPLANE_TOKEN), send it in the header `Authorization: Bearer TOKEN` "
                "(the Authorize button does it here).")},
        },
    }


def serve_assets(app: Flask) -> None:
    app.register_blueprint(Blueprint(
        "apidocs", __name__, static_folder=str(swagger_ui_path), static_url_path=ASSETS_URL.rstrip("/")
    ))
