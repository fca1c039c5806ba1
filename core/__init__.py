"""Labelscope's computing layer: everything the app does, with no Qt anywhere below here."""

__version__ = "0.1.0"
APP_NAME = "Labelscope"
