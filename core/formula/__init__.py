"""Formulas: synthetic data, a CRNN trained with CTC, decoding and alignment."""
