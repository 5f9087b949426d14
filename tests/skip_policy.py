"""No silent skips: a pytest plugin that, in strict mode, fails the run when a test was skipped
for any reason other than the few listed in ALLOWED.

    python -m pytest -p tests.skip_policy -rs ...         # scripts/test.sh loads it
    DENTALAI_STRICT_SKIPS=1 ./scripts/test.sh            # strict: .ci/run sets it

Without DENTALAI_STRICT_SKIPS (a newcomer's machine without ../shared/data, Chromium or a GPU) it
does nothing: the skips are listed by `-rs` and the run stays green. With it (CI, where the whole
environment is set up), a skip means a test that did not run: a missing redis-server, Chromium,
dciodvfy, poppler, data set or model is then a failure, listed under "skips not allowed".

ALLOWED are the skips that CI itself cannot avoid: the TensorRT test needs an NVIDIA GPU, and
the training tests need PyTorch, which the test environment does not install.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest

ENV = "DENTALAI_STRICT_SKIPS"


@dataclass(frozen=True)
class Allowed:
    path: str  # a test file, or a folder ending in "/"
    reason: str  # regular expression the skip reason must match
    why: str


ALLOWED: tuple[Allowed, ...] = (
    Allowed("tests/engines/test_engine_tensorrt_gpu.py", r"TensorRT GPU|trtexec", "needs an NVIDIA GPU"),
    Allowed("tests/training/", r"torch", "PyTorch (the train extra) is not in the test environment"),
)


def strict() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def allowed(nodeid: str, reason: str) -> bool:
    path = nodeid.split("::", 1)[0]
    for rule in ALLOWED:
        matches_path = path.startswith(rule.path) if rule.path.endswith("/") else path == rule.path
        if matches_path and re.search(rule.reason, reason):
            return True
    return False


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):  # xfail is not a skip
            return
        reason = _reason(report)
        if not allowed(report.nodeid, reason):
            self.refused.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)  # a module skipped whole (pytestmark, importorskip, allow_module_level)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.refused and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.refused:
            return
        tr = terminalreporter
        tr.section(f"skips not allowed ({ENV}=1)", sep="=", red=True, bold=True)
        tr.line(f"{len(self.refused)} test(s) did not run; in CI every test runs except these allowed skips:")
        for rule in ALLOWED:
            tr.line(f"  allowed: {rule.path} ({rule.why})")
        tr.line("not allowed:")
        for nodeid, reason in self.refused:
            tr.line(f"  SKIPPED {nodeid}: {reason}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    if strict():
        config.pluginmanager.register(SkipPolicy(), "dentalai-skip-policy")
