"""Writing the generated CRDs (api/crd.py): what `make crds` commits."""

from __future__ import annotations

from pathlib import Path

from recluster.api.crd import HEADER, render, write_crds

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("recluster.io_clustertriggers.yaml", "recluster.io_clusterdefinitions.yaml")


def test_write_crds_writes_every_crd_into_each_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "crds", tmp_path / "chart" / "crds"  # the second does not exist yet
    written = write_crds([first, second])
    assert written == [first / NAMES[0], first / NAMES[1], second / NAMES[0], second / NAMES[1]]
    for path in written:
        assert path.read_text() == (ROOT / "crds" / path.name).read_text()
    # Writing again replaces the files (make crds after a model change).
    (first / NAMES[0]).write_text("stale")
    write_crds([first])
    assert (first / NAMES[0]).read_text() == (ROOT / "crds" / NAMES[0]).read_text()


def test_render_keeps_the_models_order_and_writes_unicode_as_is() -> None:
    text = render({"spec": {"zeta": "naïve — ok", "alpha": 1}})
    assert text == HEADER + "spec:\n  zeta: naïve — ok\n  alpha: 1\n"
