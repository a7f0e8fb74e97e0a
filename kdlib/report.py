"""What a run renders: tables (CSV + Markdown), figures (PNG) and atomically written files.

Everything lands under a profile's reports directory, `tables/` and `figures/`, where
`python -m kdlib.run` picks it up for the run's `index.html`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from kdlib.cache import atomic_write_json, atomic_write_text, replacing_file

__all__ = [
    "atomic_write_json",
    "atomic_write_text",
    "percent",
    "save_figure",
    "stable_style",
    "style_table",
    "write_table",
]


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


def save_figure(fig: Any, reports_dir: Path, name: str) -> Path:
    """Save a matplotlib figure as `figures/<name>.png` (120 dpi, tight); the figure stays open."""
    path = Path(reports_dir) / "figures" / f"{name}.png"
    with replacing_file(path) as temporary:
        fig.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    return path


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
