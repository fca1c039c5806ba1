"""The Formulas workbench."""
