"""Mutation testing over a kept list of mutants (tools/mutants.yaml): does the suite notice bugs in
the modules whose bugs would lose tasks, leak data or mislabel teeth?

    .venv/bin/python -m tools.mutants                      # every mutant, the working tree, -j 2
    .venv/bin/python -m tools.mutants --source head        # HEAD as committed (ignores local edits)
    .venv/bin/python -m tools.mutants --only store-create-ttl --only queue-ack-xdel
    .venv/bin/python -m tools.mutants --module grpc_server/queue.py -j 1
    .venv/bin/python -m tools.mutants --check              # only check the list (as the fast test does)

Each mutant replaces one exact snippet of one file (it must occur exactly once) and names the test
files (or node ids) that should kill it. The tool copies the repository into a temporary folder
once per parallel slot (never touching the checkout), plants a syntax error once to prove that the
copy is what the tests import, runs the listed tests unmutated (a failing baseline would make
every mutant look killed), then for each mutant writes the mutated file into its slot, runs
`pytest -x -q -p no:cacheprovider <tests>` under a timeout and restores the file.

A mutant is killed when the tests fail (or time out), survived when they pass. A survivor listed
with `equivalent: "<why>"` is expected; any other survivor, an "equivalent" mutant that gets
killed (its explanation is wrong), or a run error makes the exit status 1. docs/mutation.md has
the score, the equivalent mutants and the habit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
LIST = REPO / "tools" / "mutants.yaml"
FIELDS = {"id", "file", "original", "replacement", "tests", "why", "equivalent", "timeout"}
REQUIRED = ("id", "file", "original", "replacement", "tests", "why")
PLANTED = "<<< syntax error planted by tools/mutants.py >>>\n"
DEFAULT_TIMEOUT_S = 240


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    why: str
    equivalent: str = ""
    timeout: float | None = None

    def mutate(self, source: str) -> str:
        return source.replace(self.original, self.replacement, 1)


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed | timeout | survived | error
    seconds: float
    tail: str = ""  # the end of pytest's output

    @property
    def caught(self) -> bool:
        return self.status in ("killed", "timeout")

    @property
    def verdict(self) -> str:
        """What the status means for the list: ok, or why it is not."""
        if self.status == "error":
            return "ERROR"
        if self.mutant.equivalent:
            return "equivalent" if not self.caught else "KILLED-BUT-LISTED-EQUIVALENT"
        return "ok" if self.caught else "SURVIVED"


# ---- the list ----------------------------------------------------------------------------------


def load(path: Path = LIST) -> list[Mutant]:
    """The mutants of the list, in order. Raises ValueError on a malformed entry."""
    raw = yaml.safe_load(path.read_text())
    entries = raw.get("mutants") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a mapping with a 'mutants' list")
    mutants = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {i} is not a mapping")
        missing = [k for k in REQUIRED if entry.get(k) in (None, "", [])]
        unknown = set(entry) - FIELDS
        if missing or unknown:
            raise ValueError(
                f"{path}: entry {i} ({entry.get('id')}): missing {missing}, unknown {sorted(unknown)}"
            )
        tests = entry["tests"]
        if isinstance(tests, str):
            tests = [tests]
        mutants.append(
            Mutant(
                id=str(entry["id"]),
                file=str(entry["file"]),
                original=str(entry["original"]),
                replacement=str(entry["replacement"]),
                tests=tuple(str(t) for t in tests),
                why=" ".join(str(entry["why"]).split()),
                equivalent=" ".join(str(entry.get("equivalent") or "").split()),
                timeout=float(entry["timeout"]) if entry.get("timeout") else None,
            )
        )
    return mutants


def problems(mutants: Sequence[Mutant], root: Path = REPO) -> list[str]:
    """Why the list does not fit the tree at `root`: each snippet must occur exactly once in its
    file, the replacement must differ, every test file must exist and ids must be unique."""
    out = []
    for mutant_id, n in Counter(m.id for m in mutants).items():
        if n > 1:
            out.append(f"{mutant_id}: id used {n} times")
    for m in mutants:
        path = root / m.file
        if not path.is_file():
            out.append(f"{m.id}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            out.append(f"{m.id}: its snippet occurs {count} times in {m.file} (must be once)")
        if m.replacement == m.original:
            out.append(f"{m.id}: the replacement is the original")
        for test in m.tests:
            test_file = test.split("::", 1)[0]
            if not (root / test_file).exists():
                out.append(f"{m.id}: test {test_file} does not exist")
    return out


def select(mutants: Sequence[Mutant], only: Sequence[str], modules: Sequence[str]) -> list[Mutant]:
    chosen = list(mutants)
    if only:
        unknown = set(only) - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"unknown mutant ids: {', '.join(sorted(unknown))}")
        chosen = [m for m in chosen if m.id in only]
    if modules:
        chosen = [m for m in chosen if any(part in m.file for part in modules)]
    return chosen


# ---- the copies ----------------------------------------------------------------------------------


def tracked_and_new_files(repo: Path) -> list[str]:
    """The working tree's files as git sees them: tracked, and untracked but not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, check=True, capture_output=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and (repo / p).is_file()]


def make_copy(repo: Path, dest: Path, source: str) -> None:
    """`dest` = the repository's files (HEAD's, or the working tree's) without .git, .venv or
    caches; `dest.parent/shared` links to the checkout's sibling shared/ (tests read ../shared)."""
    dest.mkdir(parents=True)
    if source == "head":
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=repo, check=True,
                                 capture_output=True).stdout
        tar_path = dest.parent / "head.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            try:
                tar.extractall(dest, filter="data")
            except TypeError:  # Python 3.11 before 3.11.4 has no extraction filters
                tar.extractall(dest)  # our own HEAD's archive
        tar_path.unlink()
    else:
        for rel in tracked_and_new_files(repo):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, target)
    shared = repo.parent / "shared"
    if shared.exists() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)


def pytest_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale .pyc of a mutant (or of its original) is ever read
    env.pop("DENTALAI_STRICT_SKIPS", None)
    return env


def run_pytest(
    copy: Path, tests: Iterable[str], timeout: float, extra: Sequence[str] = ()
) -> tuple[str, str]:
    """(status, output tail): passed | failed | timeout | error. The whole process group (pytest,
    its redis-servers and service processes) is killed on a timeout."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *extra, *tests]
    proc = subprocess.Popen(
        cmd, cwd=copy, env=pytest_env(copy), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return "timeout", out.decode(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")[-3000:]
    # 0 passed; 1 tests failed; 2 interrupted (an import error of the mutant counts); 3 internal
    # error; 4 usage error and 5 no tests collected are mistakes of the list, not kills.
    status = {0: "passed", 1: "failed", 2: "failed", 3: "failed"}.get(proc.returncode, "error")
    return status, text


def prove_copy_runs(copy: Path, mutant: Mutant) -> None:
    """Plant a syntax error in the copy's `mutant.file` and collect its tests: they must fail, and
    from the copy's path. Otherwise the tests would import the checkout (editable install) and
    every mutant would survive unseen."""
    path = copy / mutant.file
    original = path.read_text()
    path.write_text(PLANTED + original)
    try:
        status, out = run_pytest(copy, mutant.tests, 120, extra=["--co"])
    finally:
        path.write_text(original)
    if status not in ("failed", "error") or PLANTED.strip() not in out or str(copy) not in out:
        raise SystemExit(
            f"a syntax error planted in the copy's {mutant.file} did not fail the collection of "
            f"{' '.join(mutant.tests)} from {copy} ({status}): the tests do not import the copy\n{out}"
        )


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class Slots:
    """One copy of the tree per parallel worker; a mutant borrows one for its run."""

    copies: list[Path]
    free: Queue[Path] = field(default_factory=Queue)

    def __post_init__(self) -> None:
        for c in self.copies:
            self.free.put(c)


def run_mutant(slots: Slots, mutant: Mutant, timeout: float) -> Result:
    copy = slots.free.get()
    path = copy / mutant.file
    original = path.read_text()
    started = time.monotonic()
    try:
        if original.count(mutant.original) != 1:
            return Result(mutant, "error", 0.0, f"snippet not found once in {mutant.file}")
        path.write_text(mutant.mutate(original))
        status, tail = run_pytest(copy, mutant.tests, mutant.timeout or timeout)
    finally:
        path.write_text(original)
        slots.free.put(copy)
    outcome = {"passed": "survived", "failed": "killed", "timeout": "timeout"}.get(status, "error")
    return Result(mutant, outcome, time.monotonic() - started, tail)


def module_of(mutant: Mutant) -> str:
    return mutant.file


def report(results: Sequence[Result], elapsed: float, out: Any = sys.stdout) -> None:
    width = max(len(r.mutant.id) for r in results)
    print(f"\n{'mutant':<{width}}  {'result':<9} {'s':>6}  file", file=out)
    for r in results:
        note = "" if r.verdict in ("ok",) else f"  <- {r.verdict}"
        print(f"{r.mutant.id:<{width}}  {r.status:<9} {r.seconds:6.1f}  {r.mutant.file}{note}", file=out)
    by_module: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_module[module_of(r.mutant)].append(r)
    print(f"\n{'module':<32} {'killed':>6} {'equiv':>6} {'surv':>5} {'total':>6}  score", file=out)
    for name in sorted(by_module):
        rs = by_module[name]
        print(_score_line(name, rs), file=out)
    print(_score_line("all", results), file=out)
    print(f"\n{len(results)} mutants in {elapsed:.0f} s", file=out)


def _score_line(name: str, rs: Sequence[Result]) -> str:
    killed = sum(r.caught for r in rs)
    equivalent = sum(1 for r in rs if r.mutant.equivalent and not r.caught)
    survived = sum(1 for r in rs if not r.caught and not r.mutant.equivalent and r.status != "error")
    scored = len(rs) - equivalent
    score = f"{killed}/{scored} = {100 * killed / scored:.0f} %" if scored else "-"
    return f"{name:<32} {killed:>6} {equivalent:>6} {survived:>5} {len(rs):>6}  {score}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", type=Path, default=LIST, help="the mutant list (tools/mutants.yaml)")
    parser.add_argument("--only", action="append", default=[], metavar="ID",
                        help="run this mutant (repeatable)")
    parser.add_argument("--module", action="append", default=[], metavar="PATH",
                        help="run the mutants of files whose path contains PATH (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (2)")
    parser.add_argument("--source", choices=("worktree", "head"), default="worktree",
                        help="copy the working tree (tracked and new files; default) or HEAD as committed")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per mutant's tests (a timeout counts as killed; {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    parser.add_argument("--check", action="store_true", help="only check the list against the tree")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args(argv)

    mutants = load(args.list)
    chosen = select(mutants, args.only, args.module)
    if not chosen:
        print("no mutant selected", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dentalai-mutants-"))
    try:
        jobs = max(1, min(args.jobs, len(chosen)))
        copies = [work / f"slot{k}" / "repo" for k in range(jobs)]
        for copy in copies:
            make_copy(REPO, copy, args.source)
        found = problems(chosen, copies[0])
        if found:
            print("the mutant list does not fit the tree (update tools/mutants.yaml):", file=sys.stderr)
            for line in found:
                print(f"  {line}", file=sys.stderr)
            return 2
        if args.check:
            print(f"{len(chosen)} mutants fit the {args.source} tree")
            return 0
        started = time.monotonic()
        prove_copy_runs(copies[0], chosen[0])
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
            print(f"baseline: {len(tests)} test files unmutated ...", flush=True)
            status, tail = run_pytest(copies[0], tests, max(args.timeout, 900))
            if status != "passed":
                print(f"the tests fail without any mutant ({status}); fix that first:\n{tail}",
                      file=sys.stderr)
                return 2
            print(f"baseline passed in {time.monotonic() - started:.0f} s", flush=True)
        slots = Slots(copies)
        lock = threading.Lock()
        done: list[Result] = []

        def one(m: Mutant) -> Result:
            r = run_mutant(slots, m, args.timeout)
            with lock:
                done.append(r)
                print(f"[{len(done)}/{len(chosen)}] {m.id}: {r.status} ({r.seconds:.0f} s)", flush=True)
                if r.verdict != "ok" and r.verdict != "equivalent":
                    print("    " + "\n    ".join(r.tail.strip().splitlines()[-15:]), flush=True)
            return r

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, chosen))
        elapsed = time.monotonic() - started
        report(results, elapsed)
        if args.json:
            args.json.write_text(json.dumps(
                {"elapsed_s": round(elapsed, 1), "source": args.source, "results": [
                    {"id": r.mutant.id, "file": r.mutant.file, "status": r.status, "verdict": r.verdict,
                     "seconds": round(r.seconds, 1)} for r in results
                ]}, indent=1))
        bad = [r for r in results if r.verdict not in ("ok", "equivalent")]
        for r in bad:
            print(f"{r.verdict}: {r.mutant.id} ({r.mutant.file}): {r.mutant.why}", file=sys.stderr)
        if bad:
            print("each survivor needs a test that kills it, or `equivalent: <why>` in "
                  "tools/mutants.yaml and docs/mutation.md", file=sys.stderr)
        return 1 if bad else 0
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
