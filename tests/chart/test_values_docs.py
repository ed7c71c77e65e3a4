"""docs/install.md documents every Helm value, from values.schema.json."""

from __future__ import annotations

import json
from typing import Any

import yaml
from chart_support import CHART, ROOT, values_table

INSTALL = ROOT / "docs" / "install.md"


def _leaves(values: Any, prefix: str = "") -> set[str]:
    if not isinstance(values, dict) or not values:
        return {prefix.rstrip(".")}
    keys: set[str] = set()
    for name, value in values.items():
        keys |= _leaves(value, f"{prefix}{name}.")
    return keys


def test_the_values_table_in_install_md_is_up_to_date() -> None:
    text = INSTALL.read_text()
    expected = values_table.replace_block(text, values_table.table())
    assert text == expected, "run: python tools/values_table.py --update docs/install.md"


def test_every_value_has_a_description_and_a_row() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = values_table.rows(schema, values)
    assert [key for key, _, _, description in rows if not description] == []
    documented = {key for key, *_ in rows}
    # free-form objects (resources requests, affinity ...) are documented as a whole
    missing = {
        leaf
        for leaf in _leaves(values)
        if not any(leaf == key or leaf.startswith(f"{key}.") for key in documented)
    }
    assert missing == set()
    assert "`store.postgresql.uriSecret.name`" in values_table.table()


def test_schema_rejects_unknown_keys_at_every_documented_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def closed(node: dict[str, Any], path: str) -> list[str]:
        found = [] if node.get("additionalProperties") is False else [path or "(top)"]
        for name, sub in node.get("properties", {}).items():
            if "properties" in sub:
                found += closed(sub, f"{path}.{name}".lstrip("."))
        return found

    assert closed(schema, "") == []


def test_install_from_a_release_is_one_command_and_from_a_clone_three() -> None:
    section = INSTALL.read_text().split("## Install, upgrade, uninstall", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```sh")[1:3]]
    release, clone = ([line for line in b.splitlines() if line.strip()] for b in blocks)
    # the chart published by .github/workflows/release.yaml, no clone needed
    assert " ".join(release).startswith(
        "helm install recluster oci://ghcr.io/recluster/charts/recluster --version "
    )
    assert len(clone) == 3
    assert clone[1].startswith("helm install recluster charts/recluster")
