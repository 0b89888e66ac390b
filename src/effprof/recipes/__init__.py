"""Measurement recipes: what a job measures, composed from ``measure``, ``compress``, ``models``
and ``data`` (the profile's registered steps, compression's per-step measurements, re-timing
stored runs). Below the jobs (``api``), above ``config`` and ``runs``; never imports the report.
"""
