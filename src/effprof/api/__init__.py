"""Jobs: the one place that composes models, data, measurement, compression and the run store."""

from effprof.api.profile import profile

__all__ = ["profile"]
