"""The run report: one self-contained HTML page (map embedded as base64, no scripts, no fetches).

Everything shown comes from the run's artifacts and summary; every value is
HTML-escaped (labels and texts come from users' documents).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TEXT_CHARS = 240
"""Characters of a representative's text shown in the table."""

_STYLE = """
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:1em 0}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0} td.num{text-align:right;white-space:nowrap}
.meta td:first-child{color:#666;width:14em} img{max-width:100%;height:auto;border:1px solid #eee}
.kw{color:#555} ol{margin:0;padding-left:1.2em} .id{font-family:"DejaVu Sans Mono",monospace}
"""


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: int
    label: str
    size: int
    share: float
    spread: float
    keywords: Sequence[str]
    representatives: Sequence[tuple[str, str | None]]
    """(document id, text or None), most central first."""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def render_page(
    *,
    title: str,
    metadata: Mapping[str, Any],
    clusters: Sequence[ClusterRow],
    map_png: bytes | None,
    map_caption: str = "",
) -> bytes:
    """The HTML page as UTF-8 bytes."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(map_caption)}</p>' if map_caption else "",
        '<table class="meta"><tbody>',
        *(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in metadata.items()),
        "</tbody></table>",
    ]
    if map_png is not None:
        encoded = base64.b64encode(map_png).decode("ascii")
        parts.append(
            f'<img id="cluster-map" alt="cluster map" src="data:image/png;base64,{encoded}">'
        )
    parts += [
        f"<h2>Clusters ({len(clusters)})</h2>",
        '<table class="clusters"><thead><tr><th>#</th><th>label</th><th>size</th><th>share</th>'
        "<th>spread</th><th>keywords</th><th>most central documents</th></tr></thead><tbody>",
    ]
    for row in sorted(clusters, key=lambda r: (-r.size, r.cluster_id)):
        reps = "".join(
            f'<li><span class="id">{_e(doc)}</span>'
            + (f": {_e(_short(text))}" if text else "")
            + "</li>"
            for doc, text in row.representatives
        )
        parts.append(
            f"<tr><td class=num>{row.cluster_id}</td><td>{_e(row.label)}</td>"
            f"<td class=num>{row.size}</td><td class=num>{row.share:.1%}</td>"
            f"<td class=num>{row.spread:.3f}</td>"
            f'<td class="kw">{_e(", ".join(row.keywords))}</td><td><ol>{reps}</ol></td></tr>'
        )
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(p for p in parts if p).encode("utf-8")
