"""The kept mutant list (tools/mutants.yaml, run by `python -m tools.mutants`) fits the code: the
mutation run itself is slow and not part of the suite, but its list must not rot silently.

When a test here fails after you changed a mutated line, update that mutant in tools/mutants.yaml
(its `original` and `replacement`) so it plants the same bug in the new code, then run
`.venv/bin/python -m tools.mutants --module <your file>` (docs/mutation.md)."""

from __future__ import annotations

from pathlib import Path

from tools.mutants import LIST, load, problems

REPO = Path(__file__).resolve().parents[2]
HINT = "update tools/mutants.yaml (see docs/mutation.md)"


def test_every_snippet_occurs_once_and_every_test_file_exists() -> None:
    found = problems(load(LIST), REPO)
    assert not found, f"{HINT}:\n" + "\n".join(found)


def test_every_mutant_is_still_valid_python() -> None:
    """A mutant that does not compile would be 'killed' by any test that imports its module, and
    prove nothing."""
    broken = []
    for m in load(LIST):
        if not m.file.endswith(".py"):
            continue
        source = (REPO / m.file).read_text()
        try:
            compile(m.mutate(source), m.file, "exec")
        except SyntaxError as exc:
            broken.append(f"{m.id}: {exc}")
    assert not broken, f"{HINT}:\n" + "\n".join(broken)


def test_every_equivalent_mutant_is_explained_in_the_docs() -> None:
    docs = (REPO / "docs" / "mutation.md").read_text()
    missing = [m.id for m in load(LIST) if m.equivalent and f"`{m.id}`" not in docs]
    assert not missing, f"equivalent mutants not explained in docs/mutation.md: {missing}"
