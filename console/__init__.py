"""Berth: a terminal operations console for Docker on bare metal."""

__version__ = "0.1.0"
