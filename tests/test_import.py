"""Importing the package or loading the plugin never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
import pytest_cnnshape, pytest_cnnshape.plugin
assert pytest_cnnshape.__version__
print('torch' in sys.modules)
"""


def test_import_does_not_load_torch() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_load_lazily() -> None:
    code = (
        "import sys, pytest_cnnshape as p\n"
        "assert 'torch' not in sys.modules\n"
        "p.trace; p.ShapeMismatchError; p.arith\n"
        "print('torch' in sys.modules, sorted(set(p.__all__) - set(dir(p))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest_cnnshape

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_cnnshape.nope


def test_a_pytest_run_with_the_plugin_does_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys
        def test_no_torch():
            assert 'torch' not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "cnnshape")
    result.assert_outcomes(passed=1)


def test_all_lists_every_lazy_name() -> None:
    import pytest_cnnshape as p

    assert set(p.__all__) == set(p._EXPORTS) | set(p._SUBMODULES) | {"__version__"}
