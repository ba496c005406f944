"""The web trace viewer behind ``spanlake ui``: a read-only JSON API over a store plus one
static page (vanilla JS, no build step, no runtime dependency beyond the stdlib server)."""

from spanlake.exporter.ui.server import UIServer, make_server

__all__ = ["UIServer", "make_server"]
