"""The study as the index page tells it, in the paper's order: which tables, figures, findings and examples
each section shows, and which notebook holds its details. Titles and captions of figures are not here:
they are recorded where each figure is made (`kdlib.report.render.save_figure`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """One step of the study on the index page."""

    key: str  # the page anchor
    heading: str
    lead: str  # one sentence: what the section shows
    notebook: str  # the stage whose page has the details
    tables: tuple[tuple[str, str], ...] = ()  # (table, heading); `{view}` repeats it for each of evaluate.views
    figures: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()  # the stages whose findings close the section
    examples: str | None = None  # a table of (reference, hypothesis) pairs shown aligned, right to left
    absent: str = "Nothing to show for this run."  # when its notebook rendered but made none of the above


STORY = (
    Section(
        "corpora",
        "The corpora, and what was skipped",
        "The distillation pool and the test sets: clips, hours and varieties, and every clip left out, with why.",
        "01_pseudo_label",
        tables=(("corpora", "Sets"), ("skipped_clips", "Clips skipped or flagged")),
    ),
    Section(
        "pseudo-labels",
        "Pseudo-label quality per variety",
        "How far the teacher's transcripts of the pool are from the references, per variety: what the filter acts on.",
        "01_pseudo_label",
        tables=(("teacher_pool_wer", "The teacher on the pool (pseudo-labels against references, %)"),),
        figures=("teacher_wer_by_variety", "teacher_wer_histogram"),
        findings=("01_pseudo_label",),
    ),
    Section(
        "sweep",
        "The λ sweep",
        "What each WER threshold λ keeps of the pool, and the WER of the students trained on it, the teacher as reference.",
        "02_filter_sweep",
        tables=(("training_sets", "Training sets per λ"),),
        figures=("kept_fraction_vs_threshold", "threshold_wer"),
        findings=("02_filter_sweep",),
    ),
    Section(
        "distillation",
        "Distillation",
        "Each student's training: its loss terms and its WER on the held-out pairs as it trains.",
        "03_distill",
        tables=(("distillation_runs", "Runs"),),
        figures=("distillation_losses", "distillation_eval_wer"),
        findings=("03_distill",),
    ),
    Section(
        "results",
        "The main table, in each view, and efficiency",
        "Every model's WER on every test set with the paper's averages, in each scoring view, and its size and speed here.",
        "04_evaluate",
        tables=(
            ("headline", "Headline: WER averages (%) and efficiency"),
            ("paired_differences", "Paired differences: student minus teacher or its unfiltered twin (* supported)"),
            ("wer_{view}", "WER (%), {view} view"),
            ("efficiency", "Efficiency, measured on this machine"),
        ),
        figures=("wer_per_test_set",),
        findings=("04_evaluate",),
    ),
    Section(
        "errors",
        "Error categories, with aligned examples",
        "What kind of error each model makes, per model and per variety, with examples aligned word by word.",
        "05_error_analysis",
        figures=("error_categories_by_model", "error_categories_by_variety"),
        findings=("05_error_analysis",),
        examples="error_examples",
    ),
    Section(
        "published",
        "Published vs this run",
        "The paper's published WER beside this run's, for every model and test set that maps to a published one; "
        "each average is taken over the same test sets on both sides (the published one recomputed from its cells "
        "when this run has fewer than the paper's ten).",
        "04_evaluate",
        tables=(("published_vs_this_run", "Published and this run (WER %)"),),
        figures=("published_parity",),
        absent="The {profile} profile has no published counterpart: its models and test sets are not the paper's.",
    ),
)
