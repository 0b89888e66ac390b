"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel, and shows the answer
box inline for a model whose class is defined in a notebook cell."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def outputs(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") != "stream"]


def test_the_quickstart_notebook_runs_and_shows_the_answer_inline(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in outputs(c) if o["output_type"] == "error"]
    assert not errors, errors
    html = [o["data"].get("text/html", "") for c in code for o in outputs(c) if "data" in o]
    run_cell = next(h for h in html if 'class="effprof"' in h)
    assert "The answer in numbers" in run_cell and "__main__.TinyRestorer" in run_cell
    assert "Every output pixel costs" in run_cell  # an image-to-image model: cost per pixel
    texts = " ".join(
        o["data"].get("text/plain", "") for c in code for o in outputs(c) if "data" in o
    )
    assert "Count(1x3x64x64" in " ".join("".join(o.get("text", "")) for c in code
                                          for o in c.get("outputs", []))  # fmt: skip
    assert "report.html" in texts and "ratio_reliable" in texts
