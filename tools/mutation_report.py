"""The score of the last `make mutation` run, per module, from mutmut's result files.

    .venv/bin/python tools/mutation_report.py                      # print the tables
    .venv/bin/python tools/mutation_report.py --update docs/testing.md

Reads build/mutation/mutants/src/recluster/**/*.py.meta (mutmut 3: one exit code
per mutant) and the equivalent mutants listed by hand in
tools/mutation_equivalent/<module>.toml, and writes between the markers of the
document: the killed/survived/equivalent counts per package and module, the
unexplained survivors per function, and each equivalent mutant with its reason.

An equivalent mutant is one no test can tell from the original (a log-only
change, a default that is always overridden). Its file, one per module:

    # tools/mutation_equivalent/recluster.core.triggering.toml
    [equivalent]
    "recluster.core.triggering.x_reconcile__mutmut_12" = "one line: why no test can see it"

Invariants:
- The score is killed / (mutants - equivalent): a mutant not run counts as not killed.
- Only a mutant that was not killed (survived, or no test reaches it) can be
  equivalent. An entry naming a killed mutant, or one the run does not have
  (the source changed and mutmut renumbered), is stale: the tool reports it and
  exits non-zero, so the list cannot rot. An entry for a mutant not run yet is
  neither counted nor stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "build" / "mutation" / "mutants" / "src"
EQUIVALENT = ROOT / "tools" / "mutation_equivalent"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
EQUIVALENT_BEGIN = "<!-- mutation-equivalent:begin -->"
EQUIVALENT_END = "<!-- mutation-equivalent:end -->"
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # a failing test, a timeout, the type checker
"""Exit codes mutmut counts as caught (mutmut.stats.status_by_exit_code)."""
SURVIVED, NO_TESTS, NOT_CHECKED = {0}, {5, 33}, {None}
NOT_KILLED = ("survived", "no tests")

Verdicts = dict[str, dict[str, int | None]]
"""Exit code of every mutant (None: not run yet), by module."""
Equivalents = dict[str, dict[str, str]]
"""The reason each listed mutant is equivalent, by module."""


class ListError(ValueError):
    """A file of tools/mutation_equivalent/ that is not a table of mutant -> reason."""


def verdicts(root: Path = MUTANTS) -> Verdicts:
    """Exit code of every mutant, by module (recluster.core.schedule, ...)."""
    found: Verdicts = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)
        found[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def parse_equivalents(module: str, text: str, source: str) -> dict[str, str]:
    """The `[equivalent]` table of one module's file; ListError names the file and entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ListError(f"{source}: not TOML: {error}") from error
    unknown = sorted(set(data) - {"equivalent"})
    if unknown:
        raise ListError(f"{source}: unknown table {unknown[0]!r}; only [equivalent] is read")
    table = data.get("equivalent", {})
    if not isinstance(table, dict):
        raise ListError(f"{source}: 'equivalent' must be a table of mutant name = reason")
    for mutant, reason in table.items():
        if not mutant.startswith(f"{module}.") or "__mutmut_" not in mutant:
            raise ListError(f"{source}: {mutant!r} is not a mutant of {module}")
        if not isinstance(reason, str) or not reason.strip():
            raise ListError(f"{source}: {mutant!r} needs a one-line reason (a non-empty string)")
        if "\n" in reason:
            raise ListError(f"{source}: the reason of {mutant!r} must be one line")
    return dict(table)


def equivalents(directory: Path = EQUIVALENT) -> Equivalents:
    """Every module's list, from <directory>/<module>.toml."""
    return {
        path.stem: parse_equivalents(path.stem, path.read_text(), str(path))
        for path in sorted(directory.glob("*.toml"))
    }


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


@dataclass
class Tally:
    """The verdicts read against the lists of equivalent mutants."""

    modules: dict[str, Counter[str]] = field(default_factory=dict)
    survivors: Counter[str] = field(default_factory=Counter)
    """Not-killed mutants no list explains, per function."""
    equivalent: dict[str, dict[str, str]] = field(default_factory=dict)
    """module -> mutant -> reason, for the listed mutants that were not killed."""
    stale: list[str] = field(default_factory=list)
    """One line per entry that names a killed or unknown mutant."""


def tally(found: Verdicts, listed: Equivalents) -> Tally:
    """Counts per module, unexplained survivors and stale entries (pure)."""
    result = Tally()
    for module, codes in found.items():
        if not codes:
            continue
        reasons = listed.get(module, {})
        counts: Counter[str] = Counter()
        for mutant, code in codes.items():
            verdict = classify(code)
            if verdict in NOT_KILLED and mutant in reasons:
                verdict = "equivalent"
                result.equivalent.setdefault(module, {})[mutant] = reasons[mutant]
            elif verdict in NOT_KILLED:
                result.survivors[_function(mutant)] += 1
            counts[verdict] += 1
        result.modules[module] = counts
    for module, reasons in sorted(listed.items()):
        codes = found.get(module, {})
        for mutant in reasons:
            if mutant not in codes:
                result.stale.append(f"{mutant}: no such mutant in this run (renumbered?)")
            elif classify(codes[mutant]) == "killed":
                result.stale.append(f"{mutant}: killed, so not equivalent")
    return result


def _function(mutant: str) -> str:
    """recluster.core.jobs.x_build_job__mutmut_12 -> recluster.core.jobs.build_job."""
    name = re.sub(r"__mutmut_\d+$", "", mutant)
    module, _, mangled = name.rpartition(".")
    return f"{module}.{mangled.removeprefix('x_').replace('xǁ', '').replace('ǁ', '.')}"


def _score(c: Counter[str]) -> str:
    counted = sum(c.values()) - c["equivalent"]
    return f"{100 * c['killed'] / counted:.1f} %" if counted else "-"


def render(result: Tally) -> str:
    """The counts per package and module and the unexplained survivors per function."""
    packages: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for module, counts in result.modules.items():
        packages[".".join(module.split(".")[:2])] += counts
    head = (
        "| {} | mutants | killed | survived | no test reaches it | equivalent | not run "
        "| killed of the non-equivalent |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"

    def row(name: str, c: Counter[str], score: str) -> str:
        return (
            f"| `{name}` | {sum(c.values())} | {c['killed']} | {c['survived']} | "
            f"{c['no tests']} | {c['equivalent']} | {c['not checked']} | {score} |"
        )

    lines = [head.format("package"), rule]
    lines += [row(p, c, f"**{_score(c)}**") for p, c in sorted(packages.items())]
    lines += ["", head.format("module"), rule]
    lines += [row(m, c, _score(c)) for m, c in sorted(result.modules.items())]
    lines += ["", "Surviving (or unreached) mutants not listed as equivalent, per function:", ""]
    lines += ["| function | survivors |", "|---|---:|"]
    lines += [f"| `{name}` | {count} |" for name, count in result.survivors.most_common()]
    return "\n".join(lines)


def render_equivalents(result: Tally) -> str:
    """Each equivalent mutant with its reason, a table per module."""
    if not result.equivalent:
        return "No mutant is listed as equivalent."
    lines: list[str] = []
    for module, reasons in sorted(result.equivalent.items()):
        lines += [f"`{module}` ({len(reasons)}):", "", "| mutant | why no test can tell it |"]
        lines.append("|---|---|")
        for mutant, reason in sorted(reasons.items(), key=lambda item: _natural(item[0])):
            text = reason.strip().replace("|", "\\|")
            lines.append(f"| `{mutant.removeprefix(module + '.')}` | {text} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def _natural(mutant: str) -> tuple[str, int]:
    name, _, number = mutant.rpartition("__mutmut_")
    return name, int(number) if number.isdigit() else 0


def replace_between(text: str, begin: str, end: str, block: str) -> str:
    """`text` with what stands between the markers replaced by `block`."""
    if begin not in text or end not in text:
        raise ValueError(f"the document lacks the markers {begin} and {end}")
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + block + "\n" + text[stop:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--update", type=Path, help="rewrite the tables between the markers")
    parser.add_argument("--results", type=Path, default=MUTANTS, help="mutmut's mutants/src")
    parser.add_argument("--equivalent", type=Path, default=EQUIVALENT, help="the lists' folder")
    args = parser.parse_args()
    try:
        result = tally(verdicts(args.results), equivalents(args.equivalent))
    except ListError as error:
        print(f"mutation_report: {error}", file=sys.stderr)
        return 2
    if args.update is None:
        print(render(result), render_equivalents(result), sep="\n\n")
    else:
        text = replace_between(args.update.read_text(), BEGIN, END, render(result))
        text = replace_between(text, EQUIVALENT_BEGIN, EQUIVALENT_END, render_equivalents(result))
        args.update.write_text(text)
    for line in result.stale:
        print(f"mutation_report: stale entry in {args.equivalent}: {line}", file=sys.stderr)
    return 1 if result.stale else 0


if __name__ == "__main__":
    sys.exit(main())
