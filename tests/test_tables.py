"""One table style for every page and every CSV-backed table: no index column, units in the headers, one decimal
for percentages, thousands separators, Arabic cells laid out right to left, one sequential scale with a legend."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from kdlib.report import render as report


def test_a_table_has_no_index_column_units_in_headers_and_one_number_style() -> None:
    frame = pd.DataFrame(
        {
            "wer": [21.14285, 100.0],  # already in % (notebooks convert with report.percent)
            "kept_fraction": [0.741, 1.0],  # a fraction: shown in %
            "parameters_M": [1.5, 1550.0],
            "latency_ms": [13.0123, 2.5],
            "rtf": [0.00611, 0.5],
            "speedup": [1.31, 1.0],
            "parameters": [1_103_424, 37_000],
            "trained": [True, False],
            "encoder layers": [[0, 3], [0, 1, 2, 3]],
            "final_loss": [2.16712, float("nan")],
        },
        index=pd.Index(["DW-4-2 λ=80", "teacher"], name="model"),
    )
    shown = report.formatted(report.labelled(frame))
    assert list(shown.columns) == [
        "model",
        "WER (%)",
        "kept (%)",
        "parameters (M)",
        "latency (ms)",
        "real-time factor",
        "speed-up (×)",
        "parameters",
        "trained",
        "encoder layers",
        "final loss",
    ]
    assert shown.iloc[0].tolist() == [
        "DW-4-2 λ=80",
        "21.1",
        "74.1",
        "1.50",
        "13.0",
        "0.00611",
        "1.31×",
        "1,103,424",
        "yes",
        "0, 3",
        "2.17",
    ]
    assert shown.iloc[1].tolist()[2:4] == ["100.0", "1,550.00"] and shown.iloc[1, -1] == "—"
    numbered = report.labelled(pd.DataFrame({"x": [1, 2]}, index=[7, 3]))  # row numbers are no column
    assert list(numbered.columns) == ["x"]


def test_the_html_table_lays_arabic_out_right_to_left_and_shades_on_one_scale_with_a_legend() -> None:
    frame = pd.DataFrame(
        {"model": ["teacher", "DW"], "MSA": [21.1, 55.4], "PAL": [53.9, 78.9], "reference": ["شو بدك؟", "ok"]}
    )
    page = report.html_table(frame, decimals=1, shade=["MSA", "PAL"], shade_label="WER (%)")
    assert "<th class='text'>model</th>" in page and "index" not in page
    assert page.count("dir='auto'") == 1 and "<td dir='auto'>شو بدك؟</td>" in page
    colours = re.findall(r"background-color: (#[0-9a-f]{6})", page)
    assert len(colours) == 4 and len(set(colours)) == 4  # one scale over both columns, not one per column
    assert "kd-legend" in page and "WER (%): 21.1" in page and "78.9" in page
    lightest = min(colours, key=lambda colour: -sum(int(colour[i : i + 2], 16) for i in (1, 3, 5)))
    assert colours[0] == lightest  # the lowest WER is the lightest shade
    assert "RdYlGn" not in page and "#a50026" not in page  # no red-green


def test_the_markdown_beside_the_csv_shows_the_same_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"wer": [25.0, 50.123]}, index=pd.Index(["a", "b"], name="model"))
    csv, md = report.write_table(frame, tmp_path, "t")
    assert csv.read_text().splitlines() == ["model,WER (%)", "a,25.0", "b,50.123"]  # full precision
    assert md.read_text().splitlines()[2:] == ["| a       |      25.0 |", "| b       |      50.1 |"]
