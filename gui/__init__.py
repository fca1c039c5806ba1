"""Labelscope's Qt layer: it shows what `core` computes and never computes itself."""
