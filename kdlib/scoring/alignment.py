"""A word alignment laid out for reading: one column per aligned word, as text lines or a right-to-left HTML table."""

from __future__ import annotations

import html

from kdlib.scoring.metrics import word_alignment


def aligned_columns(reference: str, hypothesis: str) -> list[tuple[str, str, str]]:
    """One (reference word, hypothesis word, op) per aligned word, in reading order; op is '' for an equal
    word, else S (substitution), D (deletion) or I (insertion), the missing side shown as ``***``."""
    columns = []
    for chunk in word_alignment(reference, hypothesis):
        op = "" if chunk.op == "equal" else chunk.op[0].upper()
        refs = chunk.ref_words or ("***",) * len(chunk.hyp_words)
        hyps = chunk.hyp_words or ("***",) * len(chunk.ref_words)
        columns += [(ref, hyp, op) for ref, hyp in zip(refs, hyps)]
    return columns


def aligned_example(reference: str, hypothesis: str) -> str:
    """Two aligned lines, ``REF:`` and ``HYP:``, one column per aligned word; errors are
    tagged (S)ubstitution, (D)eletion or (I)nsertion and the missing side shown as ``***``."""
    columns = [
        (ref + f"({op})" * bool(op), hyp + f"({op})" * bool(op))
        for ref, hyp, op in aligned_columns(reference, hypothesis)
    ]
    widths = [max(len(ref), len(hyp)) for ref, hyp in columns]
    ref_line = "  ".join(ref.ljust(width) for (ref, _), width in zip(columns, widths))
    hyp_line = "  ".join(hyp.ljust(width) for (_, hyp), width in zip(columns, widths))
    return f"REF: {ref_line}".rstrip() + "\n" + f"HYP: {hyp_line}".rstrip()


_OP_STYLE = {"": "", "S": "background:#fde8c8", "D": "background:#f9d0d0", "I": "background:#d6e4f7"}


def aligned_html(reference: str, hypothesis: str) -> str:
    """The alignment as an HTML table read right to left (``dir="rtl"``): one column per aligned word, the
    reference over the hypothesis, each error coloured and marked S, D or I under it; words escaped and
    bidi-isolated, so that Arabic reads in order in a browser."""
    columns = aligned_columns(reference, hypothesis)
    cell = "<td style='padding:.1rem .45rem;text-align:center;unicode-bidi:isolate;{style}'>{text}</td>"
    label = "<th style='padding:.1rem .45rem;font:600 .8em sans-serif;color:#555' dir='ltr'>{}</th>"
    rows = []
    for name, side in (("REF", 0), ("HYP", 1)):
        words = "".join(cell.format(style=_OP_STYLE[column[2]], text=html.escape(column[side])) for column in columns)
        rows.append(f"<tr>{label.format(name)}{words}</tr>")
    ops = "".join(cell.format(style="font:.75em sans-serif;color:#777", text=column[2]) for column in columns)
    rows.append(f"<tr>{label.format('')}{ops}</tr>")
    return (
        "<table class='kd-align' dir='rtl' lang='ar' style='border-collapse:collapse;margin:.3rem 0 1rem;"
        f"font-size:1.05em'>{''.join(rows)}</table>"
    )
