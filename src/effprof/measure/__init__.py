"""Measurement: pure functions returning dataclasses or DataFrames; nothing here prints.

Import from the submodules: ``effprof.measure.counting``, ``.latency``, ``.memory``, ...
"""
