"""The run's `index.html`: the answer first (`kdlib.report.headline`), its provenance, then the study in the paper's order (`kdlib.report.story.STORY`), each
section with its tables, its figures (title and caption as recorded where each was made; a click opens the
full-size PNG), the findings of its notebook and, for errors, aligned examples read right to left. The tables
kdlib computes (`kdlib.report.tables`) come from the run's current products, not from what a notebook wrote.

The page holds no time of day and no machine path: a rerun of the same results writes the same page
(times are in `run_log.json`), and the page can be shared as it is.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from kdlib.config import Params
from kdlib.models.machine import describe_machine
from kdlib.pipeline.graph import MissingProduct, StaleProduct
from kdlib.pipeline.provenance import RUN_LOG, read_log
from kdlib.report import findings
from kdlib.report import render as report
from kdlib.report.headline import headline_rows, read_headline
from kdlib.report.story import STORY, Section
from kdlib.report.tables import computed_table, computes
from kdlib.scoring.alignment import aligned_html

PAPER = "https://arxiv.org/abs/2406.04512"
esc = html.escape

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222;
  line-height: 1.45; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { margin: 1.4rem 0 .4rem; font-size: 1.05rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .5rem .8rem; }
.lead { color: #444; }
dl.provenance { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.provenance dt { font-weight: 600; } dl.provenance dd { margin: 0; }
table.kd { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .92rem; }
table.kd th, table.kd td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
table.kd th { background: #f4f4f4; }
table.kd td:first-child, table.kd th:first-child { text-align: left; }
.ok { color: #1a7f37; } .failed, .interrupted { color: #cf222e; font-weight: bold; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(30rem, 1fr)); gap: 1.2rem; }
figure { margin: 0; } figure img { width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .92rem; margin-top: .3rem; }
.findings { background: #f3f7fb; border-left: 4px solid #4a7ebb; padding: .4rem 1rem; margin: 1rem 0; }
.findings ul { margin: .3rem 0; padding-left: 1.2rem; }
.example { font-size: .85rem; color: #555; margin: .8rem 0 0; }
.details { font-size: .92rem; }
#answer { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .2rem 1.2rem .6rem; }
#answer h2 { margin-top: .8rem; border: 0; }
#answer dl { display: grid; grid-template-columns: max-content 1fr; gap: .45rem 1.2rem; font-size: 1.05rem; }
#answer dt { font-weight: 600; } #answer dd { margin: 0; }
"""


def _written(params: Params, name: str, **options) -> pd.DataFrame | None:
    """The table `name` as its notebook writes it, read back as from its CSV (`options` to `pandas.read_csv`):
    computed from the run's products when kdlib computes it and they are current, else the notebook's
    `tables/<name>.csv` if there is one (a table kdlib does not compute, or products missing or stale); None
    if neither."""
    if computes(params, name):
        try:
            frame = computed_table(params, name)
        except (MissingProduct, StaleProduct, FileNotFoundError):  # products missing or stale
            pass
        else:
            if frame is None:
                return None
            text = report.labelled(frame).to_csv(index=False)  # as `render.write_table` writes it
            return pd.read_csv(io.StringIO(text), **options)
    path = params.reports_path / "tables" / f"{name}.csv"
    return pd.read_csv(path, **options) if path.is_file() else None


def _table(frame: pd.DataFrame, name: str, heading: str, shaded: bool = False) -> str:
    """A table as every page shows it (`kdlib.report.render.html_table`): a table of rates (its heading says %) has
    one decimal; a `shaded` one (a main table: rates per test set) is shaded on one sequential scale, with its legend."""
    numeric = [column for column in frame.columns[1:] if frame[column].dtype.kind in "fi"]
    options = {"shade": numeric, "shade_label": f"{name.split('_')[0].upper()} (%)"} if shaded else {}
    body = report.html_table(frame, decimals=1 if "%" in heading else None, **options) if len(frame) else "<p>None.</p>"
    return f"<h3>{esc(heading)}</h3>\n{body}"


def _figure(record: report.FigureRecord) -> str:
    return (
        f"<figure id='figure-{esc(record.name)}'><a href='{esc(record.png)}'>"
        f"<img src='{esc(record.png)}' alt='{esc(record.title)}' loading='lazy'></a>"
        f"<figcaption><strong class='title'>{esc(record.title)}</strong> "
        f"<span class='caption'>{esc(record.caption)}</span></figcaption></figure>"
    )


def _figures(records: list[report.FigureRecord]) -> str:
    return f"<div class='figures'>{''.join(_figure(record) for record in records)}</div>" if records else ""


def _examples(frame: pd.DataFrame) -> str:
    """The first example of each category, aligned (`kdlib.scoring.alignment.aligned_html`)."""

    frame = frame.drop_duplicates("category")
    parts = [
        f"<p class='example'><b>{esc(row.category)}</b> · {esc(row.model)} · {esc(row.dataset)} · {esc(str(row.id))}</p>"
        + aligned_html(row.reference, row.hypothesis)
        for row in frame.itertuples()
    ]
    return "<h3>Aligned examples (read right to left; S substitution, D deletion, I insertion)</h3>" + "".join(parts)


def _tables(section: Section, params: Params) -> list[str]:
    """The section's tables that the run made; a `{view}` table once per scoring view, the headline view first."""
    headline = params.evaluate.headline_view
    views = [headline, *(view for view in params.evaluate.views if view != headline)]
    named = []
    for name, heading in section.tables:
        named += [
            (name.format(view=view), heading.format(view=view), "{view}" in name)
            for view in (views if "{view}" in name else [""])
        ]
    tables = [(_written(params, name), name, heading, shaded) for name, heading, shaded in named]
    return [_table(frame, name, heading, shaded) for frame, name, heading, shaded in tables if frame is not None]


def _findings(reports: Path, stage: str) -> str:
    sentences = report.read_findings(reports, stage)
    items = "".join(f"<li>{esc(sentence)}</li>" for sentence in sentences)
    return f"<div class='findings'><h3>Findings ({esc(stage)})</h3><ul>{items}</ul></div>" if sentences else ""


def _section(number: int, section: Section, params: Params, log: dict[str, Any]) -> str:
    reports = params.reports_path
    parts = _tables(section, params)
    parts.append(_figures([record for name in section.figures if (record := report.read_figure(reports, name))]))
    examples = _written(params, section.examples, keep_default_na=False) if section.examples else None
    if examples is not None:
        parts.append(_examples(examples))
    parts += [_findings(reports, stage) for stage in section.findings]
    parts = [part for part in parts if part]
    rendered = log["notebooks"].get(section.notebook, {}).get("status") == "ok"
    if not parts:
        parts.append(
            f"<p>{esc(section.absent.format(profile=params.profile))}</p>"
            if rendered
            else f"<p>Not produced yet: run stage {esc(section.notebook)}.</p>"
        )
    if (reports / f"{section.notebook}.html").is_file():
        parts.append(
            f"<p class='details'>Details: <a href='{esc(section.notebook)}.html'>{esc(section.notebook)}</a></p>"
        )
    return (
        f"<section id='{esc(section.key)}'>\n<h2>{number} · {esc(section.heading)}</h2>\n"
        f"<p class='lead'>{esc(section.lead)}</p>\n" + "\n".join(parts) + "\n</section>"
    )


def _other_figures(params: Params) -> str:
    """Figures no section names (made by a notebook the story does not know yet): still shown, with captions."""
    placed = {name for section in STORY for name in section.figures}
    others = sorted(path.stem for path in (params.reports_path / "figures").glob("*.png") if path.stem not in placed)
    records = [record for name in others if (record := report.read_figure(params.reports_path, name))]
    if not records:
        return ""
    return f"<section id='other-figures'>\n<h2>Other figures</h2>\n{_figures(records)}\n</section>"


def _answer(params: Params) -> str:
    """The headline block: the best student against the teacher, its size and speed, what the filter did."""
    found = read_headline(params)
    if found is None:
        body = "<p>Not produced yet: run stage 04_evaluate.</p>"
    else:
        items = "".join(f"<dt>{esc(label)}</dt><dd>{esc(sentence)}</dd>" for label, sentence in headline_rows(found))
        body = f"<dl>{items}</dl>"
    return f"<section id='answer'>\n<h2>The answer</h2>\n{body}\n</section>"


def _provenance(log: dict[str, Any]) -> str:
    digest = log.get("params_sha256") or ""
    rows = {
        "command": f"<code>{esc(log.get('command') or '?')}</code>",
        "params file": f"<code>{esc(log.get('params_file') or '?')}</code>"
        + (f" (sha256 <code title='{esc(digest)}'>{esc(digest[:12])}</code>)" if digest else ""),
        "commit": f"<code>{esc(log.get('commit') or '?')}</code>",
        "date": esc(log.get("date") or "?"),
        "machine": esc(describe_machine(log["machine"]) if log.get("machine") else "not recorded"),
        "run log": f"<a href='{RUN_LOG}'>{RUN_LOG}</a> (each stage's status, wall time and time of day)",
    }
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows.items())
    return f"<section id='provenance'>\n<h2>Provenance</h2>\n<dl class='provenance'>{items}</dl>\n</section>"


def _notebooks(log: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><a href='{esc(name)}.html'>{esc(name)}</a></td>"
        f"<td class='{esc(entry['status'])}'>{esc(entry['status'])}</td>"
        f"<td>{entry['wall_s']:.1f}</td><td>{esc(entry.get('error') or '')}</td></tr>"
        for name, entry in sorted(log["notebooks"].items())
    )
    return (
        "<section id='notebooks'>\n<h2>Notebooks</h2>\n<p class='lead'>Each stage's page: its tables and figures "
        "with the code that made them (hidden until <i>show code</i>), and its findings.</p>\n<table class='kd'>"
        "<thead><tr><th>notebook</th><th>status</th><th>wall (s)</th><th>error</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>\n</section>"
    )


def write_index(params: Params) -> Path:
    """Write `<reports_dir>/index.html` from what the run left in its reports folder and run log."""
    reports = params.reports_path
    log = read_log(reports / RUN_LOG)
    contents = "".join(f"<li><a href='#{esc(section.key)}'>{esc(section.heading)}</a></li>" for section in STORY)
    sections = "\n".join(_section(number, section, params, log) for number, section in enumerate(STORY, 1))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kdlib report: {esc(params.profile)}</title><style>{_CSS}</style></head>
<body>
<h1>To Distill or Not to Distill? On the Robustness of Robust Knowledge Distillation</h1>
<p>A reproduction of <a href="{PAPER}">arXiv 2406.04512</a> with kdlib: profile <b>{esc(params.profile)}</b>.</p>
{_answer(params)}
<p class="note">{esc(findings.data_note(params))}</p>
{_provenance(log)}
<nav id="contents"><h2>The study</h2><ol>{contents}</ol></nav>
{_notebooks(log)}
{sections}
{_other_figures(params)}
</body></html>
"""
    path = reports / "index.html"
    report.atomic_write_text(path, page)
    return path
