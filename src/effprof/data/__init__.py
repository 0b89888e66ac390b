"""Data: synthetic blur pairs from images shipped with scikit-image, folder datasets, metrics."""
