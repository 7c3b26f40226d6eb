"""The playground: a page served by the service itself (at /ui) to try every model without
writing a request. Self-contained: its HTML, CSS and JS come from `static/`, nothing from elsewhere."""

from service.ui.pages import RootPages, playground_app

__all__ = ["RootPages", "playground_app"]
