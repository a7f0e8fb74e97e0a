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
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from kdlib.storage.cache import atomic_write_json, atomic_write_text, replacing_file

__all__ = [
    "HEADERS",
    "FigureRecord",
    "formatted",
    "html_table",
    "labelled",
    "show_table",
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


# What a table's columns are called wherever it is shown or written: the unit in the header. Fractions are
# shown as percentages (FRACTIONS: multiplied by 100 by `labelled`); other columns are as the notebook made them.
HEADERS = {
    "wer": "WER (%)",
    "cer": "CER (%)",
    "eval_wer": "held-out WER (%)",
    "teacher_wer": "WER (%)",
    "hours": "audio (h)",
    "kept_fraction": "kept (%)",
    "kept_hours": "kept audio (h)",
    "share": "share (%)",
    "parameters_M": "parameters (M)",
    "latency_ms": "latency (ms)",
    "rtf": "real-time factor",
    "speedup": "speed-up (×)",
    "train_pairs": "training pairs",
    "eval_pairs": "held-out pairs",
    "final_loss": "final loss",
    "pseudo_label": "pseudo-label",
}
FRACTIONS = ("teacher_wer", "kept_fraction", "share")
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")  # Hebrew, Arabic, Syriac, Thaana, NKo, forms


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as tables show it: a named index made a column and row numbers dropped (no index column), fractions
    as percentages, and the headers of `HEADERS` (units in the header)."""
    if not isinstance(frame.index, pd.RangeIndex):  # a named index is a column; row numbers are dropped
        frame = frame.reset_index(drop=all(name is None for name in frame.index.names))
    frame = frame.assign(**{column: frame[column] * 100 for column in FRACTIONS if column in frame})
    return frame.rename(columns={column: HEADERS[column] for column in frame.columns if column in HEADERS})


def _is_rtl(value: Any) -> bool:
    return isinstance(value, str) and _RTL.search(value) is not None


def _decimals(header: str, default: int | None) -> int | None:
    """Decimals of a float column by its unit: 1 for %, points and ms, 2 for millions and ×, else `default`
    (None: three significant digits)."""
    if "(%)" in header or "(points)" in header or "(ms)" in header:
        return 1
    if "(M)" in header or "(×)" in header:
        return 2
    return default


def _significant(value: float) -> str:
    """Three significant digits, without an exponent: 0.00611, 2.17, 31.2, 1,234."""
    size = abs(value)
    if size >= 100 or value == 0:
        return f"{value:,.0f}"
    return f"{value:.{max(2 - math.floor(math.log10(size)), 0)}f}"


def formatted(frame: pd.DataFrame, decimals: int | None = None) -> pd.DataFrame:
    """Every cell of `frame` as text, one style for every table: thousands separators, 1 decimal for %, points and
    ms, 2 for millions, `×` after speed-ups, 3 significant digits for other floats (`decimals` if given),
    whole-number columns without a unit as integers, yes/no, lists joined, — for missing values."""
    shown = {}
    for column in frame.columns:
        values = frame[column]
        header = str(column)
        places = _decimals(header, decimals)
        numbers = pd.to_numeric(values, errors="coerce") if values.dtype.kind in "fiu" else None
        whole = (
            numbers is not None
            and values.dtype.kind == "f"
            and places is None
            and numbers.dropna().apply(float.is_integer).all()
        )

        def cell(value: Any, places: int | None = places, whole: bool = whole, header: str = header) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "—"
            if isinstance(value, (bool, np.bool_)):
                return "yes" if value else "no"
            if isinstance(value, (int, np.integer)) or (whole and isinstance(value, float)):
                return f"{int(value):,}"
            if isinstance(value, (float, np.floating)):
                text = f"{value:,.{places}f}" if places is not None else _significant(float(value))
                return text + ("×" if "(×)" in header else "")
            if isinstance(value, (list, tuple, np.ndarray)):
                return ", ".join(str(item) for item in value)
            return str(value)

        shown[header] = [cell(value) for value in values]
    return pd.DataFrame(shown, index=range(len(frame)))


def _shades(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[dict[tuple[int, str], str], float, float]:
    """A background per cell of `columns` on one colour-blind-safe sequential scale over all of them (light: low)."""
    import matplotlib

    numbers = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    low, high = float(np.nanmin(numbers.to_numpy())), float(np.nanmax(numbers.to_numpy()))
    scale = matplotlib.colormaps[SEQUENTIAL]
    colours = {}
    for column in columns:
        for row, value in enumerate(numbers[column]):
            if not math.isnan(value):
                share = 0.0 if high == low else (value - low) / (high - low)
                colours[row, column] = matplotlib.colors.to_hex(
                    scale(SHADE_RANGE[0] + share * (SHADE_RANGE[1] - SHADE_RANGE[0]))
                )
    return colours, low, high


SEQUENTIAL = "Blues"  # one hue, light to dark: readable with any colour vision, and in greyscale
SHADE_RANGE = (0.05, 0.6)  # of the colour map: text stays dark enough to read on every shade


def html_table(
    frame: pd.DataFrame,
    *,
    decimals: int | None = None,
    shade: Sequence[str] = (),
    shade_label: str = "",
    caption: str = "",
) -> str:
    """`frame` (after `labelled`) as an HTML table in the one style of every page: formatted cells (`formatted`),
    numbers right-aligned, `dir="auto"` on cells with right-to-left text (Arabic reads right to left, its
    punctuation on the right side), no index column, and the `shade` columns (headers after `labelled`) shaded on
    one sequential scale, with its legend under the table."""
    frame = labelled(frame)
    text = formatted(frame, decimals)
    numeric = {str(column) for column in frame.columns if frame[column].dtype.kind in "fiu"}
    colours, low, high = _shades(frame, shade) if shade and len(frame) else ({}, 0.0, 0.0)
    head = "".join(
        f"<th class='{'num' if str(column) in numeric else 'text'}'>{html.escape(str(column))}</th>"
        for column in text.columns
    )
    rows = []
    for row in range(len(text)):
        cells = []
        for column in text.columns:
            value = text.at[row, column]
            attributes = " class='num'" if column in numeric else ""
            if _is_rtl(frame[column].iloc[row]):
                attributes += " dir='auto'"
            if (row, column) in colours:
                attributes += f" style='background-color: {colours[row, column]}'"
            cells.append(f"<td{attributes}>{html.escape(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f"<table class='kd'>{f'<caption>{html.escape(caption)}</caption>' if caption else ''}"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    if colours:
        table += _legend(low, high, shade_label or ", ".join(map(str, shade)))
    return f"<div class='kd-table'>{TABLE_CSS}{table}</div>"


def _legend(low: float, high: float, label: str) -> str:
    """The shading's scale: a light-to-dark bar from the lowest to the highest shaded value."""
    import matplotlib

    scale = matplotlib.colormaps[SEQUENTIAL]
    stops = ", ".join(
        matplotlib.colors.to_hex(scale(SHADE_RANGE[0] + i / 4 * (SHADE_RANGE[1] - SHADE_RANGE[0]))) for i in range(5)
    )
    return (
        f"<p class='kd-legend'><span>{html.escape(label)}: {low:,.1f}</span>"
        f"<span class='kd-scale' style='background: linear-gradient(to right, {stops})'></span>"
        f"<span>{high:,.1f}</span></p>"
    )


TABLE_CSS = """<style>
.kd-table table.kd { border-collapse: collapse; margin: .4rem 0 .3rem; font-size: .92rem; }
.kd-table table.kd th, .kd-table table.kd td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left;
  white-space: nowrap; }
.kd-table table.kd th { background: #f4f4f4; }
.kd-table table.kd .num { text-align: right; font-variant-numeric: tabular-nums; }
.kd-table table.kd td[dir] { white-space: normal; text-align: start; }
.kd-table .kd-legend { display: flex; align-items: center; gap: .5rem; font-size: .85rem; color: #444; margin: 0 0 1rem; }
.kd-table .kd-scale { display: inline-block; width: 8rem; height: .8rem; border: 1px solid #ccc; }
</style>"""


def show_table(frame: pd.DataFrame, **options: Any) -> Any:
    """In a notebook: `frame` as `html_table` renders it (the same table the index shows)."""
    from IPython.display import HTML

    return HTML(html_table(frame, **options))


def write_table(frame: pd.DataFrame, reports_dir: Path, name: str, floatfmt: str | None = None) -> tuple[Path, Path]:
    """Write `tables/<name>.csv` (full precision) and `tables/<name>.md` (as every table shows it: `formatted`),
    both `labelled` (no index column, units in the headers). `floatfmt` (".3f") sets the decimals of the floats
    whose header names no unit."""
    tables = Path(reports_dir) / "tables"
    frame = labelled(frame)
    decimals = int(floatfmt.strip(".f")) if floatfmt else None
    text = formatted(frame, decimals)
    numeric = [frame[column].dtype.kind in "fiu" for column in frame.columns]
    csv_path, md_path = tables / f"{name}.csv", tables / f"{name}.md"
    atomic_write_text(csv_path, frame.to_csv(index=False))
    align = ["right" if n else "left" for n in numeric]
    markdown = text.to_markdown(index=False, colalign=align, disable_numparse=True) if len(text) else ""
    atomic_write_text(md_path, (markdown or "| " + " | ".join(map(str, frame.columns)) + " |") + "\n")
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
    """`stable_style` with `lower_is_better_columns` shaded on one sequential, colour-blind-safe scale over all of
    them (light: lowest). Pages use `html_table`, which adds the scale's legend."""
    styler = stable_style(frame, precision)
    return styler.background_gradient(
        cmap=SEQUENTIAL, subset=list(lower_is_better_columns), axis=None, low=0.1, high=0.6
    )
