"""slimmer: analyze and slim container image archives, offline."""

__version__ = "0.1.0"
