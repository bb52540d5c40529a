"""A mistake in a model defined in a Jupyter cell points at the cell as Jupyter names it
(``cell In[2], line 7``), not at IPython's temporary file for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cnnshape import ShapeMismatchError

CELLS = (
    "import torch.nn as nn\nfrom pytest_cnnshape import trace",
    """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))
""",
)


@pytest.fixture
def shell() -> Iterator[Any]:
    interactive = pytest.importorskip("IPython.core.interactiveshell")
    made = interactive.InteractiveShell.instance()
    try:
        yield made
    finally:
        interactive.InteractiveShell.clear_instance()


def test_the_line_of_a_cell_is_named_by_the_cells_number(shell: Any) -> None:
    numbers = []
    for cell in CELLS:
        numbers.append(shell.execution_count)  # the number Jupyter shows beside the cell
        assert shell.run_cell(cell, store_history=True).success
    result = shell.run_cell("trace(Net(), (1, 3, 4, 4))", store_history=True, silent=True)
    err = result.error_in_exec
    assert isinstance(err, ShapeMismatchError)
    assert f"  at        cell In[{numbers[1]}], line 7: return self.fc(x.flatten(1))\n" in str(err)
    assert err.fix == "nn.Linear(in_features=48, out_features=2)"
