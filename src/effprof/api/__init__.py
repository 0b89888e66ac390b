"""Jobs: the one place that composes models, data, measurement recipes, compression and the run
store. Every job takes what the user holds (an ``nn.Module``, a name or a factory string) and
returns typed results (a :class:`~effprof.api.run.Run`, a :class:`~effprof.api.count.Count`).
"""

from effprof.api.compare import compare
from effprof.api.compress import compress
from effprof.api.count import count
from effprof.api.evaluate import evaluate
from effprof.api.export import export_mlflow, github_benchmark
from effprof.api.profile import profile
from effprof.api.run import Metrics, Run
from effprof.api.sweep import sweep
from effprof.api.train import train

__all__ = ["Metrics", "Run", "compare", "compress", "count", "evaluate", "export_mlflow",
           "github_benchmark", "profile", "sweep", "train"]  # fmt: skip
