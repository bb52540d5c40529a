"""The controller side of baselines: write what was accepted, judge unused files, report.

Run by the session object on the controller only (the serial process, or xdist's
controller): the one process that writes baseline files. Tests compared and
recorded their use on their model entries; at the end of the session this object

- refuses to write a file two tests disagree about (or two names that differ only
  in case, one file on macOS and Windows), failing the run;
- with ``--cnn-shapes-update`` writes missing files and rewrites changed or
  unreadable ones, atomically; with ``update_missing`` writes only missing ones;
- lists baseline files no test used, on runs that ran everything, and with
  ``--cnn-shapes-prune`` deletes them: only files that are provably ours (our
  schema and format version) and really inside the project (symlinks resolved);
  any other file in a baseline folder is listed and left alone;
- removes the temporary files a killed write left behind, on update runs;
- prints counts and GitHub annotations in the terminal summary.

Failures go through ``session.exitstatus``; nothing raises from the summary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..baseline import github, serializer
from ..baseline.location import (
    UPDATE,
    declared_folder,
    display,
    file_name,
    leftover_writes,
    outside,
    remove_empty_folders,
    resolve,
    safe_name,
    stored_files,
)
from ..baseline.record import CHANGED, MISSING, UNREADABLE, BaselineOptions, BaselineUse, use_in
from ..errors import BaselineFileError
from ..fileio import write_atomic
from .baseline_check import entry_snapshot
from .keys import NOTHING_WRITTEN

if TYPE_CHECKING:
    from .entries import ModelEntry
    from .options import Settings
    from .report.gather import SessionModels

WRITTEN, UPDATED, UNCHANGED = "written", "updated", "unchanged"
PRUNE = f"{UPDATE} --cnn-shapes-prune"


def narrowing(config: pytest.Config, deselected: str | None) -> str | None:
    """What kept this run from running every test (None: nothing did)."""
    for option, flag in (
        ("keyword", "-k"),
        ("markexpr", "-m"),
        ("lf", "--lf"),
        ("stepwise", "--sw"),
        ("deselect", "--deselect"),
    ):
        if config.getoption(option, None):
            return flag
    if any("::" in str(arg) for arg in config.args):
        return "node ids"
    return deselected


@dataclass
class Outcome:
    """What the session's end did with baselines, for the summary."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((WRITTEN, UPDATED, UNCHANGED), 0))
    wrote: bool = False
    failed: list[tuple[ModelEntry, BaselineUse]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    #: Files in baseline folders prune may not delete, each with the reason.
    kept: list[str] = field(default_factory=list)
    #: Temporary files of killed writes: listed, or removed (``cleaned``) on update runs.
    leftovers: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    not_judged: str | None = None
    #: How many baseline files tests compared with (after conflicts are left out).
    used: int = 0
    problems: list[str] = field(default_factory=list)
    #: How many files were to be written when Ctrl-C stopped the writing (0: it was not).
    interrupted: int = 0
    #: The run was interrupted (Ctrl-C) before the session's end.
    stopped: bool = False


class BaselineGate:
    """Writes accepted baselines and reports on them, on the controller."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        models: SessionModels,
        files_passed: dict[str, bool],
        deselected: str | None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.models = models
        #: Test file (rootdir-relative, as in node ids) -> every test in it passed.
        self.files_passed = files_passed
        self.deselected = deselected
        self.outcome = Outcome()
        #: Each file a write was attempted for (path, text, what it counts as), for ``_recount``.
        self._attempted: list[tuple[Path, str, str]] = []

    def finish(self, session: pytest.Session) -> None:
        """Write accepted baselines, judge unused ones; conflicts and write errors fail the run."""
        self.outcome.stopped = session.exitstatus == pytest.ExitCode.INTERRUPTED
        texts: dict[str, str] = {}
        writing = True
        try:
            texts = self._texts()
            self.outcome.used = len(texts)
            if self.settings.update or self.settings.project.update_missing:
                for file, text in sorted(texts.items()):
                    self._store(file, text)
            writing = False
            if session.exitstatus != pytest.ExitCode.INTERRUPTED:
                self._judge_unused()
        except KeyboardInterrupt:
            # Ctrl-C here: each file is its old or its new whole self (write_atomic), each
            # deletion done or not; say how far it got instead of a traceback from pytest.
            if writing and not texts:
                self.outcome.problems.append(NOTHING_WRITTEN)
            elif writing:
                self._recount()
                self.outcome.interrupted = len(texts)
            else:
                self.outcome.problems.append(
                    f"interrupted while judging unused baselines ({len(self.outcome.pruned)} deleted)"
                )
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            return
        if self.outcome.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _texts(self) -> dict[str, str]:
        """Each used file's text to write; files tests disagree about are left out, as problems."""
        renderings: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for entry in self.models.entries:
            use = use_in(entry.extras)
            if use is None:
                continue
            if use.failed:
                self.outcome.failed.append((entry, use))
            text = serializer.dumps(entry_snapshot(entry, use.output_only))
            renderings[use.file][text].append(entry.nodeid)
        texts: dict[str, str] = {}
        for file, variants in sorted(renderings.items()):
            if len(variants) > 1:
                tests = ", ".join(sorted({n for ids in variants.values() for n in ids}))
                self.outcome.problems.append(
                    f"{file}: tests record different shapes into this one baseline ({tests}); give "
                    "the models different names (name=...) so each has its own file"
                )
            else:
                texts[file] = next(iter(variants))
        by_case: dict[str, list[str]] = defaultdict(list)
        for file in texts:
            by_case[file.casefold()].append(file)
        for files in by_case.values():
            if len(files) > 1:
                self.outcome.problems.append(
                    f"{' and '.join(sorted(files))} differ only in letter case: one file on macOS and "
                    "Windows; rename one of the models (name=...)"
                )
                for file in files:
                    texts.pop(file)
        return texts

    def _store(self, file: str, text: str) -> None:
        """Write one file as the update options allow; count what happened."""
        path = resolve(file, self.settings.rootpath)
        try:
            stored = serializer.dumps(found) if (found := serializer.read(path)) is not None else None
        except BaselineFileError:
            stored = ""  # unreadable: only --cnn-shapes-update replaces it
        if stored is not None and not self.settings.update:
            return
        state = WRITTEN if stored is None else UNCHANGED if stored == text else UPDATED
        self._attempted.append((path, text, state))
        if state != UNCHANGED:
            try:
                write_atomic(path, text)
            except OSError as exc:
                self.outcome.problems.append(f"could not write the baseline {file}: {exc}")
                return
        self.outcome.counts[state] += 1
        self.outcome.wrote = True
        self._clean(p for p in leftover_writes(path.parent) if p.name.startswith(f".{path.name}."))

    def _recount(self) -> None:
        """After Ctrl-C: count from the files themselves (the interrupt may fall between a
        rename and its count)."""
        counts = dict.fromkeys(self.outcome.counts, 0)
        for path, text, state in self._attempted:
            try:
                landed = state == UNCHANGED or path.read_text(encoding="utf-8") == text
            except (OSError, UnicodeDecodeError):
                landed = False
            counts[state] += landed
        self.outcome.counts = counts

    def _clean(self, leftovers: Iterable[Path]) -> None:
        """Remove temporary files of killed writes (update runs only; listed otherwise)."""
        rootpath = self.settings.rootpath
        for path in leftovers:
            shown = display(path, rootpath)
            if outside(path, rootpath) is not None or shown in (
                *self.outcome.leftovers,
                *self.outcome.cleaned,
            ):
                continue
            if not self.settings.update:
                self.outcome.leftovers.append(shown)
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError:
                self.outcome.leftovers.append(shown)
            else:
                self.outcome.cleaned.append(shown)

    def _candidates(self) -> list[Path]:
        """Baseline files this run would have used: declared ones, and those of test files run whole."""
        project, rootpath = self.settings.project, self.settings.rootpath
        dir_name = project.baseline_dir
        found: list[Path] = []
        if project.path is not None:
            folder = declared_folder(project.root, dir_name)
            expected = {
                folder / file_name(m.name)
                for m in project.models
                if BaselineOptions(m.baseline, m.baseline_output_only).active(project.baselines)
            }
            found += [p for p in stored_files(folder) if p not in expected]
        test_dirs: dict[Path, set[str]] = defaultdict(set)
        for file, passed in self.files_passed.items():
            path = rootpath / file
            if path.suffix == ".py":
                test_dirs[path.parent].update({safe_name(path.stem)} if passed else set())
        for directory, complete in sorted(test_dirs.items()):
            base = directory / dir_name
            if not base.is_dir():
                continue
            present = {safe_name(p.stem) for p in directory.glob("*.py")}
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                # a test file that ran whole, or one that is gone: its baselines can be judged
                if folder.name in complete or folder.name not in present:
                    found += stored_files(folder)
        return found

    def _judge_unused(self) -> None:
        """List (and with --cnn-shapes-prune delete) baseline files no test used."""
        reason = narrowing(self.config, self.deselected)
        if reason is not None:
            self.outcome.not_judged = reason
            return
        rootpath = self.settings.rootpath
        used = {resolve(use.file, rootpath) for e in self.models.entries if (use := use_in(e.extras))}
        candidates = self._candidates()
        self._clean(sorted({t for folder in {p.parent for p in candidates} for t in leftover_writes(folder)}))
        unused = []
        for path in (p for p in candidates if p not in used):
            if (real := outside(path, rootpath)) is not None:
                self.outcome.kept.append(
                    f"{display(path, rootpath)}: a symlink leads it out of the project (to {real})"
                )
            elif not serializer.is_ours(path):
                self.outcome.kept.append(
                    f'{display(path, rootpath)}: not a pytest-cnnshape baseline (no "schema": '
                    f'"{serializer.SCHEMA}", "version": {serializer.FORMAT})'
                )
            else:
                unused.append(path)
        self.outcome.unused = [display(p, rootpath) for p in unused]
        if not self.settings.prune:
            return
        for path in unused:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                self.outcome.problems.append(f"could not delete {display(path, rootpath)}: {exc}")
                continue
            self.outcome.pruned.append(display(path, rootpath))
            remove_empty_folders(path, self.settings.project.baseline_dir)

    def summary_lines(self) -> list[tuple[str, bool]]:
        """The terminal summary's lines, each with whether it is an error."""
        out = self.outcome
        lines = [(f"cnnshape: {p}", True) for p in out.problems]
        if self.settings.update and not out.used and not out.problems and not out.stopped:
            lines.append(
                (
                    "cnnshape: --cnn-shapes-update: no test compared a model with a shape baseline "
                    "(turn them on with [tool.cnnshape] baselines = true, baseline=True on a "
                    "cnn_model marker, or cnn_shapes.assert_baseline)",
                    False,
                )
            )
        if out.interrupted:
            done = sum(out.counts.values())
            lines.append(
                (
                    f"cnnshape: interrupted while writing shape baselines: {out.counts[WRITTEN]} written, "
                    f"{out.counts[UPDATED]} updated, {out.counts[UNCHANGED]} unchanged, "
                    f"{out.interrupted - done} of {out.interrupted} not reached; each file is its old or "
                    f"its new version, whole; run {UPDATE} again to finish",
                    True,
                )
            )
        elif out.wrote:
            counts = ", ".join(f"{n} {state}" for state, n in out.counts.items())
            stopped = (
                " (the run was interrupted: tests that did not run wrote nothing)" if out.stopped else ""
            )
            lines.append((f"cnnshape: shape baselines: {counts}{stopped}", False))
        if out.failed:
            kinds: dict[str, int] = defaultdict(int)
            for _, use in out.failed:
                kinds[use.status] += 1
            said = ", ".join(f"{kinds[k]} {k}" for k in (CHANGED, MISSING, UNREADABLE) if kinds[k])
            lines.append(
                (
                    f"cnnshape: shape baselines failed ({said}); review them above, then write "
                    f"or accept them with: {UPDATE}",
                    True,
                )
            )
        if out.pruned:
            lines.append((f"cnnshape: deleted {len(out.pruned)} unused shape baseline(s):", False))
            lines += [(f"  {p}", False) for p in out.pruned]
        elif out.unused:
            lines.append(
                (
                    f"cnnshape: {len(out.unused)} shape baseline(s) no test used (delete them with {PRUNE}):",
                    False,
                )
            )
            lines += [(f"  {p}", False) for p in out.unused]
        if out.kept:
            lines.append(
                (
                    f"cnnshape: {len(out.kept)} file(s) in shape baseline folders that no test used and "
                    "that --cnn-shapes-prune leaves alone (delete them by hand if unwanted):",
                    False,
                )
            )
            lines += [(f"  {k}", False) for k in out.kept]
        if out.cleaned:
            lines.append(
                (f"cnnshape: removed {len(out.cleaned)} temporary file(s) an interrupted write left:", False)
            )
            lines += [(f"  {p}", False) for p in out.cleaned]
        if out.leftovers:
            lines.append(
                (
                    f"cnnshape: {len(out.leftovers)} temporary file(s) an interrupted baseline write left "
                    f"(removed by {UPDATE}):",
                    False,
                )
            )
            lines += [(f"  {p}", False) for p in out.leftovers]
        if self.settings.prune and out.not_judged:
            lines.append(
                (
                    f"cnnshape: --cnn-shapes-prune deleted nothing: this run was narrowed by "
                    f"{out.not_judged}; unused baselines are judged only when the whole suite "
                    "runs",
                    False,
                )
            )
        return lines

    def annotations(self) -> list[str]:
        """One GitHub ``::error`` per failed baseline file, on the test (or declaration) line."""
        if not github.enabled(self.settings.project.github_annotations):
            return []
        out: dict[str, str] = {}
        for entry, use in self.outcome.failed:
            line = use.line
            if line is None and entry.source == "declared" and self.settings.project.path:
                line = github.declared_line(self.settings.project.path, entry.name)
            out.setdefault(
                use.file, github.error(use.location, line, f"{github.TITLE} {use.status}", use.text)
            )
        return [out[file] for file in sorted(out)]

    def summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Baseline counts, failures, unused files and problems; annotations on GitHub Actions."""
        for line, error in self.summary_lines():
            terminalreporter.write_line(line, red=error)
        for line in self.annotations():
            terminalreporter.write_line(line)
