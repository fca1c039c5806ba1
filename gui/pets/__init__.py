"""The Pets workbench."""
