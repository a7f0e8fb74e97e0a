"""What a run renders: tables (CSV + Markdown), figures (PNG, with their title and caption) and findings.

Everything lands under a profile's reports directory, `tables/`, `figures/` and `findings/`, where
`kdlib run` picks it up for the run's `index.html` (`kdlib.report.index`). A figure's title and one-sentence
caption are written where the figure is made, recorded beside its PNG (`figures/<name>.json`), and
shown under it in the notebook and on the index page.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from kdlib.storage.cache import atomic_write_json, atomic_write_text, replacing_file

__all__ = [
    "FigureRecord",
    "atomic_write_json",
    "atomic_write_text",
    "percent",
    "read_figure",
    "read_findings",
    "save_figure",
    "show_figure",
    "show_findings",
    "stable_style",
    "style_table",
    "write_table",
]


@dataclass(frozen=True)
class FigureRecord:
    """A saved figure: its PNG (relative to the reports folder), title and one-sentence caption."""

    name: str
    png: str
    title: str
    caption: str


def write_table(frame: pd.DataFrame, reports_dir: Path, name: str, floatfmt: str = ".2f") -> tuple[Path, Path]:
    """Write `tables/<name>.csv` (full precision) and `tables/<name>.md` (rounded to `floatfmt`).

    The index is written only when it carries information (i.e. is not a plain RangeIndex).
    """
    tables = Path(reports_dir) / "tables"
    index = not isinstance(frame.index, pd.RangeIndex)
    csv_path, md_path = tables / f"{name}.csv", tables / f"{name}.md"
    atomic_write_text(csv_path, frame.to_csv(index=index))
    atomic_write_text(md_path, frame.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    return csv_path, md_path


def save_figure(fig: Any, reports_dir: Path, name: str, *, title: str, caption: str) -> Path:
    """Save a matplotlib figure as `figures/<name>.png` (120 dpi, tight) with `title` over it, and its title
    and one-sentence caption as `figures/<name>.json` (what the index page shows); the figure stays open."""
    if not title.strip() or not caption.strip():
        raise ValueError(f"figure {name}: a title and a caption are required")
    fig.suptitle(title, y=1.0, va="bottom", fontweight="bold")
    path = Path(reports_dir) / "figures" / f"{name}.png"
    with replacing_file(path) as temporary:
        fig.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    atomic_write_json(path.with_suffix(".json"), {"title": title, "caption": caption})
    return path


def show_figure(fig: Any, reports_dir: Path, name: str, *, title: str, caption: str) -> None:
    """In a notebook: `save_figure`, then show the figure with its caption under it (and nothing else: a
    returned path would show the machine's folders in the report)."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    save_figure(fig, reports_dir, name, title=title, caption=caption)
    plt.show()
    display(Markdown(f"*{html.escape(caption, quote=False)}*"))


def read_figure(reports_dir: Path, name: str) -> FigureRecord | None:
    """The figure `name` as `save_figure` left it, or None if it was not made."""
    png = Path(reports_dir) / "figures" / f"{name}.png"
    if not png.is_file():
        return None
    sidecar = png.with_suffix(".json")  # absent beside a PNG an older kdlib saved: no title or caption
    record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    return FigureRecord(name, f"figures/{png.name}", record.get("title", name), record.get("caption", ""))


def show_findings(reports_dir: Path, stage: str, sentences: Sequence[str]) -> Any:
    """Record a stage's findings as `findings/<stage>.md` (one bullet per sentence, for the index page) and
    return them as Markdown for the notebook's last cell (sentences escaped: names come from params)."""
    text = "".join(f"- {' '.join(sentence.split())}\n" for sentence in sentences)
    atomic_write_text(Path(reports_dir) / "findings" / f"{stage}.md", text)
    from IPython.display import Markdown

    return Markdown(html.escape(text, quote=False))


def read_findings(reports_dir: Path, stage: str) -> list[str]:
    """A stage's findings, as `show_findings` recorded them (none if the stage has not rendered)."""
    path = Path(reports_dir) / "findings" / f"{stage}.md"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [line.removeprefix("- ") for line in lines if line.startswith("- ")]


def percent(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy of `frame` with the fraction `columns` (0.25) as percentages (25.0), for display."""
    return frame.assign(**{column: frame[column] * 100 for column in columns})


def stable_style(frame: pd.DataFrame, precision: int = 2) -> Styler:
    """A Styler whose HTML is the same on every run of the same table: its element ids derive from the
    table's content (pandas draws them at random), every string (cells, index and column labels and
    names) HTML-escaped (dataset names come from params), numbers with `precision` decimals."""
    digest = hashlib.sha256(frame.to_csv().encode("utf-8")).hexdigest()[:8]
    styler = Styler(frame, uuid=digest, cell_ids=False).format(precision=precision, escape="html")
    for axis in (0, 1):
        styler = styler.format_index(escape="html", axis=axis).format_index_names(escape="html", axis=axis)
    return styler


def style_table(frame: pd.DataFrame, lower_is_better_columns: Sequence[str], precision: int = 2) -> Styler:
    """`stable_style` with green for the best (lowest) values of `lower_is_better_columns`."""
    styler = stable_style(frame, precision)
    return styler.background_gradient(cmap="RdYlGn_r", subset=list(lower_is_better_columns))
