"""Executive Assistant: a governed, production-first AI assistant for executives."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("executive-assistant")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
