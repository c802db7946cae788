"""callplane's control plane: the REST API, the audit store and the recorder."""

from controlplane.app import create_app

__all__ = ["create_app"]
