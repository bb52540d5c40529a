"""The pytest surface on hostile settings: one clear line each, never an INTERNALERROR."""

from __future__ import annotations

import pytest

from tests.plugin.helpers import make_project, write_models

NAMED = """
import sys
import torch.nn as nn


class Named(nn.Sequential):
    def __init__(self, name):
        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.label = name
"""


POSITIVE = "must be a positive whole number, e.g. max_params=1_000_000"


def _no_crash(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text


def test_numeric_and_boolean_fields_are_validated_on_markers_and_fixtures(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_fields="""
        import pytest
        from mymodels.nets import LeNet

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", max_params=0)
        def test_zero(cnn_trace): pass

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", max_params=-5)
        def test_negative(cnn_trace): pass

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", max_params=True)
        def test_bool(cnn_trace): pass

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", train="yes")
        def test_train(cnn_trace): pass

        def test_fixture_zero(cnn_shapes):
            cnn_shapes.assert_output(LeNet(), "1x1x28x28", "1x10", max_params=0)

        def test_fixture_false(cnn_shapes):
            cnn_shapes.assert_output(LeNet(), "1x1x28x28", "1x10", max_params=False)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, errors=4)
    _no_crash(result)
    result.stdout.fnmatch_lines_random(
        [
            f"@pytest.mark.cnn_model: max_params=0 {POSITIVE}",
            f"@pytest.mark.cnn_model: max_params=-5 {POSITIVE}",
            f"@pytest.mark.cnn_model: max_params=True {POSITIVE}",
            "@pytest.mark.cnn_model: train='yes' must be True or False",
            "ArgumentError: cnn_shapes.assert_output(): max_params=0 must be a positive whole number, e.g. "
            "max_params=1_000_000",
            "ArgumentError: cnn_shapes.assert_output(): max_params=False must be a positive whole number, "
            "e.g. max_params=1_000_000",
        ]
    )
    assert "ZeroDivisionError" not in result.stdout.str()


def test_max_params_zero_in_pyproject_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml(
        '[tool.cnnshape.models.lenet]\nfactory = "mymodels.nets:LeNet"\ninput = "1x1x28x28"\nmax_params = 0\n'
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-cnnshape: [tool.cnnshape.models.lenet] max_params = 0 must be a positive whole "
            "number, e.g. max_params = 1_000_000"
        ]
    )


@pytest.mark.parametrize(
    ("args", "pyproject", "message"),
    [
        (
            ["--cnn-shapes-report=.json"],
            "",
            "ERROR: --cnn-shapes-report=.json: the file name '.json' is all extension: a hidden file with no "
            "extension; it must end in .json, .md or .html, e.g. --cnn-shapes-report=cnnshape.html",
        ),
        (
            [],
            '[tool.cnnshape]\nreport = "out.txt"\n',
            "ERROR: [tool.cnnshape] report = \"out.txt\": the file name 'out.txt' ends in '.txt'; it must "
            'end in .json, .md or .html, e.g. report = "cnnshape.html"',
        ),
        (
            ["--cnn-shapes-report=reports/summary"],
            "",
            "ERROR: --cnn-shapes-report=reports/summary: the file name 'summary' has no extension; it must "
            "end in .json, .md or .html, e.g. --cnn-shapes-report=cnnshape.html",
        ),
    ],
    ids=["dotfile", "pyproject-txt", "no-extension"],
)
def test_a_report_name_says_what_it_was_read_as(
    pytester: pytest.Pytester, args: list[str], pyproject: str, message: str
) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    if pyproject:
        pytester.makepyprojecttoml(pyproject)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_pyproject_that_is_not_utf8_names_the_file_and_the_byte(pytester: pytest.Pytester) -> None:
    # with -c pytest does not read pyproject.toml (it would fail with its own traceback,
    # before any plugin loads); the plugin still reads [tool.cnnshape] from the rootdir's
    ini = pytester.makeini("[pytest]\n")
    (pytester.path / "pyproject.toml").write_bytes(b'[tool.cnnshape]\nreport = "caf\xe9.json"\n')
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest("-c", str(ini), "--rootdir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _no_crash(result)
    result.stderr.fnmatch_lines(
        [
            f"ERROR: pytest-cnnshape: {pytester.path / 'pyproject.toml'}: not UTF-8 text (byte 0xe9 at "
            "offset 29); TOML files must be UTF-8: re-save it with that encoding"
        ]
    )


def test_declared_factories_with_colons_in_arguments_and_ones_that_exit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(
        pytester,
        monkeypatch,
        """
[tool.cnnshape.models.named]
factory = 'mymodels/named.py:Named(name="a:b")'
input = "1x3x8x8"
output = "1x4x6x6"

[tool.cnnshape.models.exits]
factory = "mymodels/exits.py:Net"
input = "1x3x8x8"
""",
        {"mymodels/named.py": NAMED, "mymodels/exits.py": "import sys\nsys.exit(3)\n"},
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    _no_crash(result)
    result.stdout.fnmatch_lines(
        [
            "*::exits FAILED*",
            "*::named PASSED*",
            "*model factory 'mymodels/exits.py:Net': importing 'mymodels/exits.py' called sys.exit(3); a "
            "module that defines models must not exit when imported (put script code under if __name__ == "
            "'__main__':)",
        ]
    )


def test_inputs_too_big_and_models_too_deep_are_one_line_in_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_edges="""
        import pytest
        import torch.nn as nn

        class Item(nn.Module):
            def forward(self, x):
                return x * x.sum().item()

        def deep():
            model = nn.ReLU()
            for _ in range(1000):
                model = nn.Sequential(model)
            return model

        @pytest.mark.cnn_model(nn.ReLU, input="99999999999x99999999999")
        def test_huge(cnn_trace): pass

        @pytest.mark.cnn_model(Item, input="100000x3x4096x4096")
        def test_memory(cnn_trace): pass

        @pytest.mark.cnn_model(deep, input="1x3")
        def test_deep(cnn_trace): pass

        def test_fixture(cnn_shapes):
            cnn_shapes.trace(Item(), "100000x3x4096x4096")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=3)
    _no_crash(result)
    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.cnn_model: input '99999999999x99999999999' has 1e+22 elements, more than a tensor "
            "can hold (at most 2**63 - 1); use a smaller input",
            "Item: a real forward on cpu needs 20,132,659,200,000 bytes (18,750.0 GiB) for the input alone, "
            "more than the * GiB this machine has free; trace on device='meta' (no memory; a model meta "
            "cannot run needs a smaller input)",
            "deep: cannot trace Sequential: its modules nest 1001 deep, and torch's own forward costs 4 "
            "Python frames per level, past Python's recursion limit (1000); torch cannot run it either.*",
            "TraceError: a real forward on cpu needs 20,132,659,200,000 bytes*",
        ]
    )
