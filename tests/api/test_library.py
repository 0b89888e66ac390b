"""effprof as a library: every job takes an nn.Module defined right here and returns typed runs;
the count equals FlopCounterMode on meta; a class defined in __main__ works everywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import effprof
from effprof import schema as S
from effprof.api import Run
from effprof.measure.counting import meta_copy

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"repeat": 2, "warmup": 0, "crosscheck": False, "optime": False, "int8": False,
        "threads": 1, "device": "cpu"}  # fmt: skip


class TinyClassifier(nn.Module):
    """conv 3->32, ReLU, conv 32->32, ReLU, global mean, linear 32->4: logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.body = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.body(torch.relu(self.conv(x))))
        return self.head(y.mean((2, 3)))


class MixingNet(TinyClassifier):
    """TinyClassifier with a matmul of its features by themselves (a Gram matrix) on the way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.body(torch.relu(self.conv(x)))).flatten(2)  # N x 32 x HW
        gram = y @ y.transpose(1, 2) / y.shape[-1]  # N x 32 x 32
        return self.head(gram.mean(2))


class TinyRestorer(nn.Module):
    """x + conv(relu(conv(x))): an image-to-image model for train and evaluate."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3, 3, padding=1))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.body(x)


def flop_counter_on_meta(model: nn.Module, shape: tuple[int, ...]) -> int:
    meta = meta_copy(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 24, 40)])
def test_count_takes_a_module_and_equals_flop_counter_mode(shape):
    torch.manual_seed(0)
    model = MixingNet()
    counted = effprof.count(model, shape)
    # FlopCounterMode counts conv, linear and matmul only, at 2 FLOPs per MAC
    assert 2 * counted.macs == flop_counter_on_meta(model, shape)
    assert counted.params == sum(p.numel() for p in model.parameters())
    assert counted.complete and counted.uncounted.empty and counted.unused_modules.empty
    assert set(counted.modules["module"]) >= {"conv", "body", "head"}
    assert next(model.parameters()).device.type == "cpu"  # the caller's model is untouched
    for given in (torch.rand(shape), "x".join(map(str, shape)), list(shape)):
        assert effprof.count(model, given).macs == counted.macs


def test_count_takes_names_and_factories_and_refuses_other_things():
    from effprof.models import build_model
    from effprof.results import EffprofError

    assert (
        effprof.count("mssnet", (1, 3, 64, 64)).macs
        == effprof.count(build_model("mssnet", "small"), "1x3x64x64").macs
    )
    assert effprof.count("tests.runs.tiny_models:conv", (1, 3, 8, 8)).macs == 120 * 64
    with pytest.raises(EffprofError, match=r"nn\.Module, a registered name"):
        effprof.count(42, (1, 3, 8, 8))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("library")


@pytest.fixture(scope="module")
def profiled(store):
    torch.manual_seed(0)
    model = TinyClassifier()
    return model, effprof.profile(model, torch.rand(1, 3, 16, 16), out=str(store), **FAST)


def test_profile_takes_a_module_and_returns_a_typed_run(profiled):
    model, run = profiled
    assert isinstance(run, Run) and run.kind == "profile"
    assert run.record.model == f"{__name__}.TinyClassifier"
    assert run.metrics[S.MACS] == effprof.count(model, (1, 3, 16, 16)).macs
    assert run.metrics.status(S.LATENCY.median_ms) in (S.MEASURED, S.UNRELIABLE)
    assert run.metrics.status(S.MEMORY_ACTIVATION_PEAK_BYTES) == S.MEASURED
    assert run.metrics.status(S.INT8_SPEEDUP) == S.MISSING  # int8=False
    assert "--no-int8" in run.metrics.reason(S.INT8_SPEEDUP)
    frame = run.metrics.frame().set_index("metric")
    assert frame.loc[S.MACS, "unit"] == "MAC" and frame.loc[S.MACS, "step"] == "count"
    steps = run.table("steps").set_index("step")
    assert steps.loc["latency", "status"] == "ran" and steps.loc["latency", "seconds"] > 0
    assert steps.loc["int8", "status"] == "skipped"
    assert run.record.params["model_given_as"] == "object"


def test_a_run_renders_its_report_and_shows_itself_in_a_notebook(profiled, tmp_path):
    _, run = profiled
    page = run.report(tmp_path / "page.html")
    assert page.read_text().count('id="summary"') == 1
    inline = run._repr_html_()
    assert 'class="effprof"' in inline and "The answer in numbers" in inline
    assert "<script" not in inline and "TinyClassifier" in inline


def test_every_other_job_takes_a_module(store, profiled):
    model, run = profiled
    torch.manual_seed(0)
    restorer = TinyRestorer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runs = effprof.compress(
        model, steps=[{"step": "prune", "target_macs": 0.5, "steps": 1}], test_count=2,
        test_size=16, calibration_count=2, calibration_size=16, calibration_batch=2,
        latency_warmup=0, latency_repeat=2, threads=1, ort=False, out=str(store),
        retime_rounds=1,
    )  # fmt: skip
    assert all(isinstance(r, Run) for r in runs) and [r.kind for r in runs] == ["compress"] * 2
    assert runs[1].metrics[S.MACS_RATIO] <= 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    retimed = effprof.load_runs(store, kind="retime")
    assert len(retimed) == 1  # the pruned object model was rebuilt and timed again

    evaluated = effprof.evaluate(restorer, count=2, size=16, repeat=2, warmup=0, out=str(store))
    assert isinstance(evaluated, Run) and evaluated.metrics[S.PSNR] > 0
    trained = effprof.train(restorer, steps=2, crop=16, batch=1, eval_every=0, test_count=1,
                            test_size=16, eval_count=1, eval_size=16, out=str(store),
                            progress="none")  # fmt: skip
    assert isinstance(trained, Run) and trained.metrics[S.STEPS_DONE] == 2

    frame = effprof.load_runs(store, model=model)
    assert set(frame["kind"]) == {"profile", "compress", "retime"}
    comparison = effprof.compare([run, runs[1]], retime_rounds=1, models=[model])
    assert len(comparison.retimed) == 2  # both rebuilt from the object, timed in one round


def test_sweep_takes_a_module(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("input: [1x3x16x16, 1x3x32x32]\ncount_only: [true]\n")
    summary = effprof.sweep(spec, out=str(tmp_path), model=TinyClassifier())
    assert [r.metrics[S.INPUT_SHAPE] for r in summary.runs] == ["1x3x16x16", "1x3x32x32"]
    assert {r.record.model for r in summary.runs} == {f"{__name__}.TinyClassifier"}


MAIN_SCRIPT = """
import sys, torch
from torch import nn
import effprof

class NotebookNet(nn.Module):  # defined in __main__, as in a notebook cell
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
    def forward(self, x):
        return self.conv(x)

if __name__ == "__main__":
    run = effprof.profile(NotebookNet(), torch.rand(1, 3, 32, 32), out=sys.argv[1],
                          repeat=2, warmup=0, crosscheck=False, optime=False, int8=False,
                          threads=1)
    print(run.metrics.status("memory_activation_peak_bytes"), run.metrics["macs"])
"""


def test_a_class_defined_in_main_is_measured_in_the_memory_child(tmp_path):
    script = tmp_path / "nb.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["measured", str(3 * 4 * 9 * 32 * 32)]


def test_the_thread_count_has_one_source(monkeypatch, tmp_path):
    from effprof.measure.interleave import ThreadChoice
    from effprof.recipes.profile import threads as step

    monkeypatch.setattr(step, "choose_threads", lambda *a, **k: ThreadChoice(1, "1 thread: test"))
    torch.set_num_threads(2)  # the module's one_thread fixture restores it after the module
    run = effprof.profile(TinyClassifier(), (1, 3, 16, 16), out=str(tmp_path), repeat=2,
                          warmup=0, crosscheck=False, optime=False, int8=False)  # fmt: skip
    torch.set_num_threads(1)
    assert run.metrics[S.LATENCY_THREADS_CHOICE] == "1 thread: test"
    assert run.metrics[S.LATENCY.threads] == 1 and run.record.env["torch_threads"] == 1


def test_the_callers_module_comes_back_as_it_went(tmp_path):
    model = TinyClassifier().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    effprof.profile(model, (1, 3, 16, 16), out=str(tmp_path), count_only=True)
    effprof.profile(model, (1, 3, 16, 16), out=str(tmp_path), **FAST)
    effprof.count(model, (1, 3, 16, 16))
    assert model.training and all(m.training for m in model.modules())
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
