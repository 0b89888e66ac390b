"""Weights shipped with effprof (see the model cards beside them)."""
