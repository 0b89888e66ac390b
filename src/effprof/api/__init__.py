"""Jobs: the one place that composes models, data, measurement, compression and the run store."""

from effprof.api.profile import profile
from effprof.api.sweep import sweep

__all__ = ["profile", "sweep"]
