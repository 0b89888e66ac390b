"""Any model by import path or file path: the current folder is importable, factories may return
example inputs (several tensors, token ids), and every broken factory is one line naming it."""

from __future__ import annotations

import textwrap

import pytest
import torch

from effprof.measure.counting import count_model
from effprof.models import load_subject
from effprof.results import EffprofError

TOKENS = """
import torch
from torch import nn

class TinyText(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)
        if attention_mask is not None:
            x = x * attention_mask.unsqueeze(-1)
        return self.head(x)

def tokens():
    ids = torch.randint(0, 100, (2, 16))
    return TinyText(), {"input_ids": ids, "attention_mask": torch.ones(2, 16)}

def image():
    return nn.Conv2d(3, 4, 3)
"""


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(TOKENS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "nothing"))  # restores sys.path afterwards
    return tmp_path


def test_a_module_in_the_current_folder_loads_without_pythonpath(user_folder):
    subject = load_subject("mymodels:image")
    assert isinstance(subject.model, torch.nn.Conv2d) and not subject.entry.registered


def test_a_file_path_loads(tmp_path):
    path = tmp_path / "sub dir" / "net.py"
    path.parent.mkdir()
    path.write_text(TOKENS)
    subject = load_subject(f"{path}:image")
    assert isinstance(subject.model, torch.nn.Conv2d)


def test_example_inputs_with_token_ids_and_a_mask_are_counted(user_folder):
    subject = load_subject("mymodels:tokens")
    inputs = subject.default_inputs()
    assert [t.name for t in inputs.tensors] == ["input_ids", "attention_mask"]
    assert inputs.tensors[0].dtype == "int64" and inputs.example is not None
    count = count_model(subject.model, inputs)
    assert count.macs == 2 * 16 * 8 * 4  # the head; the embedding is a gather
    assert count.output_shapes == ((2, 16, 4),)
    _, kwargs = inputs.build("cpu")
    assert torch.equal(kwargs["input_ids"], inputs.example[1]["input_ids"])  # the user's values


BROKEN = {
    "raises": (
        "def make():\n    raise RuntimeError('weights file missing')\n",
        "weights file missing",
    ),
    "syntax": ("def make(:\n    pass\n", "syntax error"),
    "needs an argument": ("def make(depth):\n    return None\n", "needs argument(s) depth"),
    "exits": ("import sys\ndef make():\n    sys.exit(0)\n", "sys.exit(0)"),
    "not a module": ("def make():\n    return 3\n", "returned int, not a torch.nn.Module"),
    "bad example": (
        "from torch import nn\ndef make():\n    return nn.ReLU(), 'text'\n",
        "example inputs",
    ),
    "import error": ("import not_a_package_anywhere\ndef make():\n    pass\n", "No module named"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_factory_is_one_line_naming_the_model(tmp_path, case):
    source, expected = BROKEN[case]
    (tmp_path / "broken.py").write_text(textwrap.dedent(source))
    with pytest.raises(EffprofError) as error:
        load_subject(f"{tmp_path / 'broken.py'}:make")
    message = str(error.value)
    assert expected in message and "broken.py" in message and "\n" not in message


def test_an_unknown_module_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EffprofError, match=r"no such module .*current folder"):
        load_subject("nowhere_to_be_found:make")
