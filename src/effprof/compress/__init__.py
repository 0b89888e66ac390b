"""Compression: significance, structured pruning, recovery, quantisation (LightGaussian recipe)."""
