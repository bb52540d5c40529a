"""Command-line options and the settings they resolve to, with ``[tool.cnnshape]``.

The command line wins over pyproject.toml; both are validated here so a wrong
value is a one-line usage error naming it. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .config import DEVICES, ProjectConfig, load_project
from .errors import ConfigError

SETTINGS_KEY = pytest.StashKey["Settings"]()


def add_options(parser: pytest.Parser) -> None:
    """Register the ``cnnshape`` option group."""
    group = parser.getgroup("cnnshape", "CNN shapes (pytest-cnnshape)")
    group.addoption("--cnn-shapes", action="store_true", default=False,
                    help="print every traced model's shapes and parameter counts at the end")
    group.addoption("--cnn-shapes-depth", type=int, default=None, metavar="N",
                    help="fold the layer tables to N levels of nesting (default 2; "
                         "[tool.cnnshape] depth)")
    group.addoption("--cnn-shapes-report", default=None, metavar="PATH",
                    help="also write the report to PATH: .json (versioned schema) or .md "
                         "(GitHub-flavoured, e.g. $GITHUB_STEP_SUMMARY)")
    group.addoption("--cnn-shapes-device", default=None, choices=DEVICES,
                    help="where models are traced: auto (meta first), meta or cpu "
                         "([tool.cnnshape] device)")
    group.addoption("--cnn-shapes-update", action="store_true", default=False,
                    help="write missing shape baselines and rewrite changed ones")
    group.addoption("--cnn-shapes-prune", action="store_true", default=False,
                    help="with --cnn-shapes-update: delete baselines no test used")


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs to know, resolved once per session."""

    project: ProjectConfig
    show: bool
    depth: int
    report: Path | None
    device: str
    update: bool
    prune: bool
    rootpath: Path

    @property
    def collects(self) -> bool:
        """Whether model entries matter for this session's output."""
        return self.show or self.report is not None or self.update or self.project.baselines


def pyproject_path(config: pytest.Config) -> Path | None:
    """The pyproject.toml holding ``[tool.cnnshape]``: the ini file or one at the rootdir."""
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def resolve_settings(config: pytest.Config) -> Settings:
    """Merge the command line over ``[tool.cnnshape]``; raise UsageError on bad values."""
    try:
        project = load_project(pyproject_path(config))
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-cnnshape: {exc}") from None
    depth = config.getoption("cnn_shapes_depth")
    if depth is not None and depth < 0:
        raise pytest.UsageError(f"--cnn-shapes-depth={depth}: give 0 or more")
    report = config.getoption("cnn_shapes_report") or project.report
    report_path = None
    if report:
        report_path = Path(report)
        if not report_path.is_absolute():
            base = config.invocation_params.dir if config.getoption("cnn_shapes_report") \
                else project.root
            report_path = base / report_path
        if report_path.suffix.lower() not in (".json", ".md"):
            raise pytest.UsageError(
                f"--cnn-shapes-report={report}: the file must end in .json or .md, e.g. "
                "--cnn-shapes-report=cnnshape.json"
            )
    prune = bool(config.getoption("cnn_shapes_prune"))
    update = bool(config.getoption("cnn_shapes_update"))
    if prune and not update:
        raise pytest.UsageError(
            "--cnn-shapes-prune deletes unused baselines only together with "
            "--cnn-shapes-update; run pytest --cnn-shapes-update --cnn-shapes-prune"
        )
    return Settings(
        project=project,
        show=bool(config.getoption("cnn_shapes")),
        depth=depth if depth is not None else project.depth,
        report=report_path,
        device=config.getoption("cnn_shapes_device") or project.device,
        update=update,
        prune=prune,
        rootpath=config.rootpath,
    )


def settings(config: pytest.Config) -> Settings:
    """The session's settings (resolved in pytest_configure)."""
    return config.stash[SETTINGS_KEY]
