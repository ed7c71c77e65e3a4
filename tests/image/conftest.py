"""The `image` fixture: the image `make image` built, or a skip where no engine exists."""

from __future__ import annotations

import os

import pytest
from image_support import Image, build_tool


@pytest.fixture(scope="session")
def image() -> Image:
    try:
        engine = build_tool.choose_engine()
    except SystemExit as exc:
        pytest.skip(f"no container engine to run the image: {exc}")
    if engine == "podman":
        build_tool.configure_podman()
    tag = os.environ.get("RECLUSTER_IMAGE", build_tool.DEV_TAG)
    if not build_tool.image_exists(engine, tag):
        pytest.fail(f"{engine} has no image {tag}: build it with `make image`", pytrace=False)
    return Image(engine, tag)
