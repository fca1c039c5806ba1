"""Pets: the Kaggle Dogs vs. Cats data, its labels, outliers, training and submission."""
