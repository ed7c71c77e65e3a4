"""tools/mutation_report.py: the score, the equivalent mutants and stale entries (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_support import _load_tool

report = _load_tool("mutation_report")

MODULE = "recluster.core.x"
FOUND = {
    MODULE: {
        f"{MODULE}.x_f__mutmut_1": 1,  # killed by a failing test
        f"{MODULE}.x_f__mutmut_2": 0,  # survived
        f"{MODULE}.x_f__mutmut_3": 0,  # survived, listed as equivalent
        f"{MODULE}.x_g__mutmut_1": 33,  # no test reaches it, listed as equivalent
        f"{MODULE}.xǁRunǁgo__mutmut_1": 0,  # a method's survivor
        f"{MODULE}.x_h__mutmut_1": None,  # not run yet
    }
}
LISTED = {
    MODULE: {
        f"{MODULE}.x_f__mutmut_3": "only the log line differs",
        f"{MODULE}.x_g__mutmut_1": "the default is always | overridden",
    }
}


def test_equivalent_mutants_leave_the_denominator_and_get_a_column() -> None:
    result = report.tally(FOUND, LISTED)
    table = report.render(result)
    row = "| `recluster.core.x` | 6 | 1 | 2 | 0 | 2 | 1 | 25.0 % |"
    assert row in table.splitlines()  # killed 1 of 6 - 2 equivalent
    assert "| `recluster.core` | 6 | 1 | 2 | 0 | 2 | 1 | **25.0 %** |" in table.splitlines()
    assert result.stale == []


def test_only_unexplained_survivors_are_listed_per_function() -> None:
    table = report.render(report.tally(FOUND, LISTED))
    survivors = table.split("per function:")[1].splitlines()
    assert "| `recluster.core.x.f` | 1 |" in survivors
    assert "| `recluster.core.x.Run.go` | 1 |" in survivors
    assert not [line for line in survivors if "x.g`" in line or "x.h`" in line]


def test_each_equivalent_mutant_is_listed_with_its_reason() -> None:
    text = report.render_equivalents(report.tally(FOUND, LISTED))
    assert text.splitlines() == [
        "`recluster.core.x` (2):",
        "",
        "| mutant | why no test can tell it |",
        "|---|---|",
        "| `x_f__mutmut_3` | only the log line differs |",
        "| `x_g__mutmut_1` | the default is always \\| overridden |",
    ]


def test_an_entry_for_a_killed_or_unknown_mutant_is_stale() -> None:
    listed = {
        MODULE: {
            f"{MODULE}.x_f__mutmut_1": "wrongly listed",
            f"{MODULE}.x_f__mutmut_9": "renumbered away",
            f"{MODULE}.x_h__mutmut_1": "not run yet: neither counted nor stale",
        },
        "recluster.core.gone": {"recluster.core.gone.x_f__mutmut_1": "module removed"},
    }
    result = report.tally(FOUND, listed)
    assert result.stale == [
        "recluster.core.gone.x_f__mutmut_1: no such mutant in this run (renumbered?)",
        f"{MODULE}.x_f__mutmut_1: killed, so not equivalent",
        f"{MODULE}.x_f__mutmut_9: no such mutant in this run (renumbered?)",
    ]
    assert result.modules[MODULE]["equivalent"] == 0
    assert result.modules[MODULE]["killed"] == 1


def test_main_exits_non_zero_on_a_stale_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "src" / "recluster" / "core"
    results.mkdir(parents=True)
    (results / "x.py.meta").write_text(json.dumps({"exit_code_by_key": FOUND[MODULE]}))
    lists = tmp_path / "lists"
    lists.mkdir()
    entry = f'[equivalent]\n"{MODULE}.x_f__mutmut_3" = "only the log line differs"\n'
    (lists / f"{MODULE}.toml").write_text(entry)
    argv = ["mutation_report", "--results", str(tmp_path / "src"), "--equivalent", str(lists)]
    monkeypatch.setattr("sys.argv", argv)
    assert report.main() == 0
    assert "| `x_f__mutmut_3` | only the log line differs |" in capsys.readouterr().out

    (lists / f"{MODULE}.toml").write_text(entry + f'"{MODULE}.x_f__mutmut_1" = "killed"\n')
    assert report.main() == 1
    stale = f"{MODULE}.x_f__mutmut_1: killed, so not equivalent"
    assert capsys.readouterr().err.splitlines() == [
        f"mutation_report: stale entry in {lists}: {stale}"
    ]


def test_update_rewrites_both_generated_sections(tmp_path: Path) -> None:
    doc = "a\n<!-- mutation:begin -->\nold\n<!-- mutation:end -->\nb\n"
    doc += "<!-- mutation-equivalent:begin -->\nold\n<!-- mutation-equivalent:end -->\nc\n"
    text = report.replace_between(doc, report.BEGIN, report.END, "new")
    text = report.replace_between(text, report.EQUIVALENT_BEGIN, report.EQUIVALENT_END, "eq")
    assert text == (
        "a\n<!-- mutation:begin -->\nnew\n<!-- mutation:end -->\nb\n"
        "<!-- mutation-equivalent:begin -->\neq\n<!-- mutation-equivalent:end -->\nc\n"
    )
    with pytest.raises(ValueError, match="lacks the markers <!-- mutation-equivalent:begin"):
        report.replace_between("a\n", report.EQUIVALENT_BEGIN, report.EQUIVALENT_END, "eq")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[equivalent]\n"recluster.core.y.x_f__mutmut_1" = "r"\n', "is not a mutant of"),
        ('[equivalent]\n"recluster.core.x.f" = "r"\n', "is not a mutant of"),
        ('[equivalent]\n"recluster.core.x.x_f__mutmut_1" = " "\n', "needs a one-line reason"),
        ('[equivalent]\n"recluster.core.x.x_f__mutmut_1" = 3\n', "needs a one-line reason"),
        ('[equivalent]\n"recluster.core.x.x_f__mutmut_1" = """a\nb"""\n', "must be one line"),
        ('[equivalents]\n"recluster.core.x.x_f__mutmut_1" = "r"\n', "unknown table 'equivalents'"),
        ("equivalent = 1\n", "must be a table"),
        ("[equivalent\n", "not TOML"),
    ],
)
def test_a_malformed_list_is_refused_naming_the_file_and_entry(text: str, problem: str) -> None:
    with pytest.raises(report.ListError, match=problem) as refused:
        report.parse_equivalents(MODULE, text, "lists/recluster.core.x.toml")
    assert str(refused.value).startswith("lists/recluster.core.x.toml: ")
