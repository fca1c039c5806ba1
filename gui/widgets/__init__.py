"""Widgets shared by both workbenches."""
