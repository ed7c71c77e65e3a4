"""Make the README's cluster map (docs/images/cluster-map.png) from real sentence embeddings.

Data: the committed sample of 1,000 MiniLM embeddings of Debian package
descriptions (tests/data/debian-packages-minilm-sample.npz, see
benchmarks/corpus.py). The texts for the keywords are those descriptions, read
from this machine's APT package lists (after `apt-get update`); without them,
the package names stand in. The run is a real one: the job runner clusters the
collection (k-means, 16 clusters: the sample's 16 Debian sections) in a
scratch Parquet store and writes its artifacts and report, whose map is copied.

Usage: python benchmarks/make_readme_map.py [--out docs/images/cluster-map.png] [--layout umap]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from recluster.api.clustering import ExecutionConfig
from recluster.engine.maplayout import DEFAULT_LAYOUT, LAYOUT_METHODS
from recluster.jobrunner.runner import JobInput, Runner
from recluster.store import open_store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/data/debian-packages-minilm-sample.npz"


def descriptions(names: list[str]) -> list[str]:
    """Each package's summary and description from the APT lists, else its name."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from corpus import package_lists, parse, read_packages

        packages: dict[str, tuple[str, str]] = {}
        for path in package_lists():
            packages.update(parse(read_packages(path)))
    except (SystemExit, OSError) as exc:
        print(f"no APT package lists ({exc}): package names stand in for texts", file=sys.stderr)
        return names
    return [packages[n][1].replace("\n", " ") if n in packages else n for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/cluster-map.png")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT, choices=LAYOUT_METHODS)
    parser.add_argument("--report", type=Path, default=None, help="Also keep the HTML report here.")
    args = parser.parse_args()
    sample = np.load(SAMPLE, allow_pickle=False)
    names = [str(n) for n in sample["names"]]
    matrix = np.asarray(sample["embeddings"], dtype=np.float32)
    with tempfile.TemporaryDirectory() as root, open_store(root) as store:
        store.append("readme", "debian-packages", names, matrix, descriptions(names))
        config = ExecutionConfig.model_validate(
            {
                "collection_ids": ["debian-packages"],
                "config": {"algorithm": "kmeans", "n_clusters": 16, "normalize": True,
                           "random_state": 7},
            }
        )  # fmt: skip
        job = JobInput(config, "readme-map", "readme", root)
        Runner(job, store, layout=args.layout).run()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(store.read_artifact("readme", "readme-map", "map.png"))
        if args.report is not None:
            args.report.write_bytes(store.read_artifact("readme", "readme-map", "report.html"))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    shutil.rmtree(Path(root), ignore_errors=True)


if __name__ == "__main__":
    main()
