"""The examples run: the quickstart notebook executed cell by cell (nbclient, the venv's
own kernel), and its script version."""

import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

from conftest import ROOT


def test_the_quickstart_notebook_executes(tmp_path):
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    # Started in examples/, as Jupyter would be when the notebook is opened there.
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the overlay figure"
    text = "".join(o.get("text", "") for o in outputs)
    assert "CorLoc@0.5" in text and "tabby" in text


def test_the_quickstart_script_runs(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    assert "CorLoc@0.5" in done.stdout
    assert (tmp_path / "chelsea-overlay.png").stat().st_size > 10_000
    assert (tmp_path / "natural" / "eval" / "summary.json").is_file()
