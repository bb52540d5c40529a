"""Command-line options and the settings they resolve to, with ``[tool.cnnshape]``.

The command line wins over pyproject.toml; both are validated here so a wrong
value is a one-line usage error naming it. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..defaults import DEFAULT_BASELINE_DIR, DEFAULT_DEPTH, DEFAULT_DEVICE, DEVICES
from .keys import SETTINGS_KEY

if TYPE_CHECKING:
    from .checks import RunOptions
    from .config import ProjectConfig

#: The report formats ``--cnn-shapes-report`` writes, by file suffix.
REPORT_SUFFIXES = (".json", ".md", ".html")


def add_options(parser: pytest.Parser) -> None:
    """Register the ``cnnshape`` option group."""
    group = parser.getgroup("cnnshape", "CNN shapes (pytest-cnnshape)")
    group.addoption(
        "--cnn-shapes",
        action="store_true",
        default=False,
        help="print every traced model's shapes and parameter counts at the end",
    )
    group.addoption(
        "--cnn-shapes-depth",
        type=int,
        default=None,
        metavar="N",
        help="fold the layer tables to N levels of nesting (default 2; [tool.cnnshape] depth)",
    )
    group.addoption(
        "--cnn-shapes-report",
        action="append",
        default=None,
        metavar="PATH",
        help="also write the report to PATH: .json (versioned schema), .md "
        "(GitHub-flavoured, e.g. $GITHUB_STEP_SUMMARY) or .html (the shape-flow picture, self-contained); "
        "repeat for several",
    )
    group.addoption(
        "--cnn-shapes-device",
        default=None,
        choices=DEVICES,
        help="where models are traced: auto (meta first), meta, cpu or cuda ([tool.cnnshape] device)",
    )
    group.addoption(
        "--cnn-shapes-update",
        action="store_true",
        default=False,
        help="write missing shape baselines and rewrite changed ones",
    )
    group.addoption(
        "--cnn-shapes-prune",
        action="store_true",
        default=False,
        help="with --cnn-shapes-update: delete baselines no test used",
    )


class Settings:
    """Everything the plugin needs to know, resolved once per session.

    A plain class rather than a dataclass, and ``[tool.cnnshape]`` parsed only
    when the project has that table: a session that traces no model should not
    pay for building classes it never uses (see ``benchmarks/plugin_overhead.py``).
    """

    def __init__(
        self,
        *,
        project: ProjectConfig | None,
        pyproject: Path | None,
        show: bool,
        depth: int | None,
        reports: list[Path],
        device: str | None,
        update: bool,
        prune: bool,
        rootpath: Path,
    ) -> None:
        self._project = project
        self.pyproject = pyproject
        self.show = show
        self.depth = depth if depth is not None else (project.depth if project else DEFAULT_DEPTH)
        #: Report files to write (``--cnn-shapes-report``, repeatable; ``[tool.cnnshape] report``).
        self.reports = reports
        self.device = device or (project.device if project else DEFAULT_DEVICE)
        self.update = update
        self.prune = prune
        self.rootpath = rootpath

    @property
    def project(self) -> ProjectConfig:
        """``[tool.cnnshape]``, validated; the defaults when the project has none."""
        if self._project is None:
            from .config import ProjectConfig

            self._project = ProjectConfig(path=self.pyproject)
        return self._project

    @property
    def report(self) -> Path | None:
        """The first report file, if any."""
        return self.reports[0] if self.reports else None

    @property
    def baseline_dir(self) -> str:
        """The folder name baselines live in (without reading an absent configuration)."""
        return self._project.baseline_dir if self._project is not None else DEFAULT_BASELINE_DIR

    @property
    def inspects(self) -> bool:
        """Whether the report shows inspection data (which costs a few more traces per model)."""
        return self.show or bool(self.reports)

    @property
    def pictures(self) -> bool:
        """Whether the report is the HTML picture, so traces also record their data flow."""
        return any(path.suffix.lower() == ".html" for path in self.reports)

    def run_options(self) -> RunOptions:
        """How this session runs model checks."""
        from .checks import RunOptions

        project = self.project
        return RunOptions(
            device=self.device,
            inspect=self.inspects,
            flow=self.pictures,
            lint_ignore=project.lint_ignore,
            lint_batch_dim=project.lint_batch_dim,
            hypothesis=project.hypothesis,
            root=project.root,
        )

    def declares(self, path: Path | None = None) -> bool:
        """Whether ``[tool.cnnshape.models]`` declares models (in the pyproject at ``path``)."""
        project = self._project
        if project is None or not project.models:
            return False
        return path is None or project.path == path


def pyproject_path(config: pytest.Config) -> Path | None:
    """The pyproject.toml holding ``[tool.cnnshape]``: the ini file or one at the rootdir."""
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def resolve_settings(config: pytest.Config) -> Settings:
    """Merge the command line over ``[tool.cnnshape]``; raise UsageError on bad values."""
    pyproject = pyproject_path(config)
    project = None
    if has_table(pyproject):
        from ..errors import ConfigError
        from .config import load_project

        try:
            project = load_project(pyproject)
        except ConfigError as exc:
            raise pytest.UsageError(f"pytest-cnnshape: {exc}") from None
    depth = config.getoption("cnn_shapes_depth")
    if depth is not None and depth < 0:
        raise pytest.UsageError(f"--cnn-shapes-depth={depth}: give 0 or more")
    given = config.getoption("cnn_shapes_report") or []
    reports = [report_path(config, project, text, bool(given)) for text in given]
    if not given and project is not None and project.report:
        reports.append(report_path(config, project, project.report, False))
    prune = bool(config.getoption("cnn_shapes_prune"))
    update = bool(config.getoption("cnn_shapes_update"))
    if prune and not update:
        raise pytest.UsageError(
            "--cnn-shapes-prune deletes unused baselines only together with "
            "--cnn-shapes-update; run pytest --cnn-shapes-update --cnn-shapes-prune"
        )
    return Settings(
        project=project,
        pyproject=pyproject,
        show=bool(config.getoption("cnn_shapes")),
        depth=depth,
        reports=reports,
        device=config.getoption("cnn_shapes_device"),
        update=update,
        prune=prune,
        rootpath=config.rootpath,
    )


def report_path(config: pytest.Config, project: ProjectConfig | None, text: str, given: bool) -> Path:
    """Where a report goes: relative to where pytest was started (command line) or to the
    pyproject.toml that names it; UsageError for a format we do not write."""
    path = Path(text)
    if not path.is_absolute():
        base = config.invocation_params.dir if given or project is None else project.root
        path = base / path
    if path.suffix.lower() not in REPORT_SUFFIXES:
        where = f"--cnn-shapes-report={text}" if given else f'[tool.cnnshape] report = "{text}"'
        name = Path(text).name
        if not path.suffix and name.lower() in REPORT_SUFFIXES:
            read = f"the file name {name!r} is all extension: a hidden file with no extension"
        elif not path.suffix:
            read = f"the file name {name!r} has no extension"
        else:
            read = f"the file name {name!r} ends in {path.suffix!r}"
        example = "--cnn-shapes-report=cnnshape.html" if given else 'report = "cnnshape.html"'
        raise pytest.UsageError(f"{where}: {read}; it must end in .json, .md or .html, e.g. {example}")
    return path


def has_table(pyproject: Path | None) -> bool:
    """Whether the pyproject.toml has a ``[tool.cnnshape]`` table (a text search, then TOML).

    Most projects have none; reading the file is cheaper than building the
    configuration classes, which only projects that configure us need.
    """
    if pyproject is None or not pyproject.is_file():
        return False
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True  # let load_project say what is wrong with it
    return "cnnshape" in text


def settings(config: pytest.Config) -> Settings:
    """The session's settings (resolved in pytest_configure)."""
    return config.stash[SETTINGS_KEY]
