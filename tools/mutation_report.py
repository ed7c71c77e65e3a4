"""The score of the last `make mutation` run, per module, from mutmut's result files.

    .venv/bin/python tools/mutation_report.py                      # print the tables
    .venv/bin/python tools/mutation_report.py --update docs/testing.md

Reads build/mutation/mutants/src/recluster/**/*.py.meta (mutmut 3: one exit code
per mutant) and writes, between the mutation markers of the document, the
killed/survived/untested counts per module and package and the surviving
mutants per function. The explanation of which survivors are equivalent is
written by hand below the markers (docs/testing.md).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "build" / "mutation" / "mutants" / "src"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # a failing test, a timeout, the type checker
"""Exit codes mutmut counts as caught (mutmut.stats.status_by_exit_code)."""
SURVIVED, NO_TESTS, NOT_CHECKED = {0}, {5, 33}, {None}


def verdicts(root: Path = MUTANTS) -> dict[str, dict[str, int | None]]:
    """Exit code of every mutant, by module (recluster.core.schedule, ...)."""
    found: dict[str, dict[str, int | None]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)
        found[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def classify(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    if code in NOT_CHECKED:
        return "not checked"
    return "other"


def _function(mutant: str) -> str:
    """recluster.core.jobs.x_build_job__mutmut_12 -> recluster.core.jobs.build_job."""
    name = re.sub(r"__mutmut_\d+$", "", mutant)
    module, _, mangled = name.rpartition(".")
    return f"{module}.{mangled.removeprefix('x_').replace('xǁ', '').replace('ǁ', '.')}"


def render(found: dict[str, dict[str, int | None]]) -> str:
    rows, packages = [], defaultdict(Counter)
    survivors: Counter[str] = Counter()
    for module, codes in found.items():
        if not codes:
            continue
        counts = Counter(classify(c) for c in codes.values())
        package = ".".join(module.split(".")[:2])
        packages[package] += counts
        rows.append((module, counts))
        for mutant, code in codes.items():
            if classify(code) in ("survived", "no tests"):
                survivors[_function(mutant)] += 1

    def score(c: Counter[str]) -> str:
        tested = c["killed"] + c["survived"] + c["no tests"]
        return f"{100 * c['killed'] / tested:.1f} %" if tested else "-"

    head = "| {} | mutants | killed | survived | no test reaches it | not run | killed of run |"
    lines = [head.format("package"), "|---|---:|---:|---:|---:|---:|---:|"]
    for package, c in sorted(packages.items()):
        lines.append(
            f"| `{package}` | {sum(c.values())} | {c['killed']} | {c['survived']} | "
            f"{c['no tests']} | {c['not checked']} | **{score(c)}** |"
        )
    lines += ["", head.format("module"), "|---|---:|---:|---:|---:|---:|---:|"]
    for module, c in rows:
        lines.append(
            f"| `{module}` | {sum(c.values())} | {c['killed']} | {c['survived']} | "
            f"{c['no tests']} | {c['not checked']} | {score(c)} |"
        )
    lines += ["", "Surviving (or unreached) mutants per function, most first:", ""]
    lines += ["| function | survivors |", "|---|---:|"]
    lines += [f"| `{name}` | {count} |" for name, count in survivors.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--update", type=Path, help="rewrite the tables between the markers")
    args = parser.parse_args()
    table = render(verdicts())
    if args.update is None:
        print(table)
        return
    text = args.update.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    args.update.write_text(text[:start] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    main()
