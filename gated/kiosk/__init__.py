"""The clerk kiosk: a web application to watch the lanes and resolve gate exceptions."""

from gated.kiosk.app import create_app
from gated.kiosk.server import KioskServer, serve

__all__ = ["KioskServer", "create_app", "serve"]
