"""Stage 04: every model on every test set — WER and CER in both views, efficiency, predictions.

Products (`kdlib.storage.paths`): `predictions.parquet`, `scores.csv`, `efficiency.csv`, and the
bootstrap intervals (`kdlib.scoring.intervals`) of every WER average, `intervals.csv`, and of every
student's paired difference against the teacher and against its no-filter twin (λ = none),
`differences.csv`, in every view. An empty test set (every clip skipped) is left out and named
in the manifest; the others are scored.

Under `accelerate launch` the models are shared out among the processes (one GPU each).

Models: the teacher, every distilled student (one per student, pool and threshold λ: `DW-16-16 λ=80`,
or `DW-16-16@500K λ=80` on a pool other than the default) and any baseline named in params (hub ids
or local folders; Whisper, SeamlessM4T or CTC models such as MMS, see `kdlib.models.families`). Per-utterance predictions are cached per model (keyed by
the model's files, the test sets and the generation settings) and saved for the error
analysis. Scores are corpus-level per test set; the averages (all, MSA, dialects) are the
unweighted means over test sets, as in the paper's tables.

Test clips longer than `data.max_duration_s` are kept with `data.long_clips` `chunk` (transcribed in windows,
joined) or `truncate` (the authors': the model hears the first window, Whisper's 30 s, and is scored against the
whole reference); `long_clip_counts` counts them per test set, with the audio beyond the window, for the manifest
and the notebook.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator

from kdlib.config import GenerationParams, Params, run_name, threshold_label
from kdlib.corpus.audio import decode, split_long
from kdlib.models.cards import add_scores
from kdlib.models.families import SpeechModel, load_model
from kdlib.models.machine import cpu_model
from kdlib.models.runtime import compute_signature, cpu_only, release_memory, resolve_device
from kdlib.models.transcription import generate, transcribe
from kdlib.scoring import intervals as bootstrap
from kdlib.scoring.metrics import corpus_scores, score_pairs
from kdlib.stages.products import PreparedSet, read_students, read_teacher, read_test_sets
from kdlib.storage.cache import atomic_write_text, file_digest, fingerprint, model_digest, replacing_file
from kdlib.storage.paths import RunLayout, relative
from kdlib.storage.progress import progress

MSA = "MSA"
WARM_UP_CLIPS = 3  # clips each model transcribes before it is timed


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # teacher, student or baseline
    source: str
    student: str | None = None  # as `kdlib.config.run_name` names it: with its pool when not the default
    threshold: str | None = None


def model_entries(params: Params) -> list[ModelEntry]:
    """The teacher, each trained student (stage 03's record), then the baselines."""
    entries = [ModelEntry("teacher", "teacher", read_teacher(params)["source"])]
    for record in read_students(params):
        if record["model_dir"] is not None:
            student = run_name(record["student"], record["pool"], params.data.default_pool)
            name = f"{student} λ={record['threshold']}"
            entries.append(ModelEntry(name, "student", record["model_dir"], student, record["threshold"]))
    for baseline in params.evaluate.baselines:
        source = baseline_source(params, baseline)
        entries.append(ModelEntry(baseline_name(source), "baseline", source))
    return entries


def baseline_source(params: Params, baseline: str) -> str:
    """A baseline as given: a local folder (relative to the repository, whatever the working directory), else a
    hub id."""
    folder = params.resolve(baseline)
    return str(folder) if folder.is_dir() else baseline


def baseline_name(source: str) -> str:
    """A baseline's row name: its hub id, or a local checkpoint's folder name."""
    return Path(source).name if Path(source).is_dir() else source


def predict(loaded: SpeechModel, test_sets: dict[str, PreparedSet], params: Params, counter: str = "") -> pd.DataFrame:
    """Per-utterance predictions of one model on every test set, with both views' WER and CER
    (the model's identity columns are added by `predict_all`, which may share one file); `counter` ("model 2/7")
    opens its progress bars."""
    frames = []
    for number, (name, corpus) in enumerate(test_sets.items(), 1):
        data = corpus.dataset
        title = f"{counter} {loaded.name} on {name} (set {number}/{len(test_sets)})".strip()
        transcripts = transcribe(
            loaded,
            data,
            params.evaluate.generation,
            title,
            params.data.loader_workers,
            truncate=params.data.long_clips == "truncate",
        )
        frame = pd.DataFrame(
            {
                "id": data["id"],
                "dataset": name,
                "variety": data["variety"],
                "duration_s": data["duration_s"],
                "reference": data["text"],
                "hypothesis": [t.text for t in transcripts],
                "seconds": [t.seconds for t in transcripts],
            }
        )
        for view in params.evaluate.views:
            scores = score_pairs(frame["reference"], frame["hypothesis"], view, params.normalization)
            frame[f"wer_{view}"], frame[f"cer_{view}"] = scores["wer"].to_numpy(), scores["cer"].to_numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def predictions_path(params: Params, entry: ModelEntry, test_sets: dict[str, PreparedSet]) -> Path:
    """Where one model's predictions are cached: keyed by the model's files, not its name, so that
    identical models (two λ that keep the same pairs train bit-identical students) share one transcription."""
    key = fingerprint(
        "predictions-v4",
        compute_signature(params.device),
        model_digest(entry.source),
        fingerprint([corpus.dataset._fingerprint for corpus in test_sets.values()]),
        params.evaluate.generation,
        params.evaluate.language_codes,
        params.normalization,
        params.evaluate.views,
        *(["long clips truncated"] if params.data.long_clips == "truncate" else []),
    )
    return RunLayout(params).model_predictions(key)


def predict_missing(
    params: Params, jobs: list[tuple[ModelEntry, Path]], test_sets: dict[str, PreparedSet], device: torch.device
) -> None:
    """Transcribe the test sets with each model whose predictions (at its `predictions_path`) are not cached yet,
    or were changed since they were written (`cached_as_written`)."""
    cached = sum(cached_as_written(path, params) for _, path in jobs)
    if cached:
        print(f"models: the predictions of {cached} of {len(jobs)} are cached", file=sys.stderr, flush=True)
    for number, (entry, path) in enumerate(jobs, 1):
        if not cached_as_written(path, params):
            loaded = _load(entry, device, params.evaluate.generation, params)
            with replacing_file(path) as temporary:
                predict(loaded, test_sets, params, f"model {number}/{len(jobs)}").to_parquet(temporary, index=False)
            atomic_write_text(_sidecar(path), file_digest(path, length=64) + "\n")  # last: the file is whole
            del loaded
            release_memory()  # before the next model is loaded


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".sha256")


def cached_as_written(path: Path, params: Params) -> bool:
    """Whether a model's cached predictions are there as they were written (the sha256 recorded beside them);
    changed ones (edited, half-copied) or ones without a record are named, removed and transcribed again."""
    if not path.exists():
        return False
    try:
        recorded = _sidecar(path).read_text(encoding="utf-8").strip()
    except OSError:
        recorded = None
    if recorded == file_digest(path, length=64):
        return True
    print(
        f"the cached predictions {relative(params, path)} changed since they were written: transcribing again",
        file=sys.stderr,
        flush=True,
    )
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)
    return False


def labelled_predictions(jobs: list[tuple[ModelEntry, Path]]) -> pd.DataFrame:
    """The cached predictions of every model, labelled per entry (identical models share one file)."""
    frames = [
        pd.read_parquet(path).assign(
            model=entry.name, kind=entry.kind, student=entry.student, threshold=entry.threshold
        )
        for entry, path in jobs
    ]
    return pd.concat(frames, ignore_index=True)


def predict_all(params: Params, entries: list[ModelEntry], test_sets: dict[str, PreparedSet]) -> pd.DataFrame:
    """Predictions of every model on every test set (cached per model's content), labelled per entry."""
    jobs = [(entry, predictions_path(params, entry, test_sets)) for entry in entries]
    predict_missing(params, jobs, test_sets, resolve_device(params.device))
    return labelled_predictions(jobs)


def long_clip_counts(params: Params, test_sets: dict[str, PreparedSet]) -> pd.DataFrame:
    """Per test set: its clips, those longer than `data.max_duration_s` (kept by `data.long_clips` chunk or
    truncate), and the audio beyond that length, in seconds: with truncate, what the models do not hear."""
    limit = params.data.max_duration_s
    rows = []
    for name, corpus in test_sets.items():
        durations = np.asarray(corpus.dataset["duration_s"] if len(corpus.dataset) else [], dtype=np.float64)
        over = durations[durations > limit]
        rows.append(
            {
                "dataset": name,
                "clips": len(durations),
                "long_clips": len(over),
                "seconds_beyond": float((over - limit).sum()),
                "handling": params.data.long_clips,
            }
        )
    return pd.DataFrame(rows, columns=["dataset", "clips", "long_clips", "seconds_beyond", "handling"])


def _load(entry: ModelEntry, device: torch.device, generation: GenerationParams, params: Params) -> SpeechModel:
    return load_model(entry.source, device, generation, name=entry.name, language_codes=params.evaluate.language_codes)


def build(params: Params) -> dict | None:
    """Stage 04: predictions of every model on every non-empty test set, their scores, and efficiency.

    Under `accelerate launch` on N processes, process i transcribes models i, i + N, …; the main process
    then reads every model's predictions, scores them and measures efficiency (one device, side by side).
    Returns the counts for the manifest (None on processes other than the main one)."""
    accelerator = Accelerator(cpu=cpu_only(params.device))
    entries = model_entries(params)
    test_sets = read_test_sets(params)
    scored = {name: corpus for name, corpus in test_sets.items() if len(corpus.dataset)}
    jobs = [(entry, predictions_path(params, entry, scored)) for entry in entries]  # each model's files hashed once
    predict_missing(params, jobs[accelerator.process_index :: accelerator.num_processes], scored, accelerator.device)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    predictions = labelled_predictions(jobs)
    scores = scores_table(predictions, params)
    averages, differences = intervals(predictions, scores, params)
    speed = efficiency(params, entries, scored)
    layout = RunLayout(params)
    with replacing_file(layout.predictions) as temporary:
        predictions.to_parquet(temporary, index=False)
    atomic_write_text(layout.scores, scores.to_csv(index=False))
    atomic_write_text(layout.intervals, averages.to_csv(index=False))
    atomic_write_text(layout.differences, differences.to_csv(index=False))
    atomic_write_text(layout.efficiency, speed.to_csv(index=False))
    score_cards([entry for entry in entries if made_here(params, entry.source)], scores, params.evaluate.headline_view)
    long_clips = long_clip_counts(params, scored)
    kept_long = {  # with long_clips skip there are none
        f"long_clips_{params.data.long_clips}": dict(zip(long_clips["dataset"], long_clips["long_clips"].tolist())),
        "long_clip_seconds_beyond": round(float(long_clips["seconds_beyond"].sum()), 1),
    }
    return {
        "models": [entry.name for entry in entries],
        "test_sets": list(scored),
        "empty_test_sets": sorted(set(test_sets) - set(scored)),
        "predictions": len(predictions),
        "digest": fingerprint(scores.to_csv(index=False)),
        **(kept_long if params.data.long_clips != "skip" else {}),
    }


def made_here(params: Params, source: str) -> bool:
    """Whether a model's folder is one kdlib made (in the run folder or the cache), whose card a run may update;
    a checkpoint shipped in the repository (the tiny teacher) is left as it is committed."""
    folder = Path(source).resolve()
    return any(folder.is_relative_to(root.resolve()) for root in (params.run_path, params.cache_path))


def score_cards(entries: list[ModelEntry], scores: pd.DataFrame, view: str) -> list[str]:
    """Add each model's WER per test set (in `view`) to the kdlib card in its folder; the models updated.

    Cards are not part of a model's digest, so this makes nothing stale; baselines and hub models are left alone."""
    updated = []
    for entry in entries:
        if entry.kind == "baseline" or not Path(entry.source).is_dir():
            continue
        rows = scores[(scores["model"] == entry.name) & (scores["view"] == view)]
        if add_scores(entry.source, dict(zip(rows["dataset"], rows["wer"])), view):
            updated.append(entry.name)
    return updated


def scores_table(predictions: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Tidy corpus-level scores: one row per model, test set and view (WER, CER as fractions)."""
    config = params.normalization
    rows = []
    for (model, dataset), part in predictions.groupby(["model", "dataset"], sort=False):
        varieties = part["variety"].unique()
        variety = varieties[0] if len(varieties) == 1 else "mixed"  # a set of several varieties counts as one
        for view in params.evaluate.views:
            scores = corpus_scores(part["reference"].tolist(), part["hypothesis"].tolist(), view, config)
            rows.append({"model": model, "dataset": dataset, "variety": variety, "view": view, **scores})
    return pd.DataFrame(rows)


def average_groups(scores: pd.DataFrame) -> dict[str, list[str]]:
    """The test sets of each average: all, MSA, dialects (a set of several varieties counts as dialectal)."""
    sets = scores.drop_duplicates("dataset")
    return {
        "avg all": sets["dataset"].tolist(),
        "avg MSA": sets.loc[sets["variety"] == MSA, "dataset"].tolist(),
        "avg dialects": sets.loc[sets["variety"] != MSA, "dataset"].tolist(),
    }


def main_table(scores: pd.DataFrame, metric: str = "wer", view: str = "normalized") -> pd.DataFrame:
    """The paper's main table: models × test sets, plus averages over all, MSA and dialect sets."""
    part = scores[scores["view"] == view]
    table = part.pivot(index="model", columns="dataset", values=metric)
    table = table[list(dict.fromkeys(part["dataset"]))]
    for name, datasets in average_groups(part).items():
        table[name] = table[datasets].mean(axis=1) if datasets else np.nan
    return table.reindex(list(dict.fromkeys(scores["model"])))


def comparison_pairs(predictions: pd.DataFrame) -> list[tuple[str, str]]:
    """(student, teacher) for every student, and (student, its no-filter twin: the same student on the same pool)
    for every λ ≠ none that has one."""
    models = predictions.drop_duplicates("model")
    students = models[models["kind"] == "student"]
    names = set(models["model"])
    pairs = []
    for row in students.itertuples():
        twin = f"{row.student} λ={threshold_label(None)}"
        pairs += [(row.model, "teacher")] if "teacher" in names else []
        pairs += [(row.model, twin)] if row.model != twin and twin in names else []
    return pairs


def intervals(predictions: pd.DataFrame, scores: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap intervals of every model's WER averages and of every pair's difference, per view."""
    settings = params.evaluate.bootstrap
    groups = {name: sets for name, sets in average_groups(scores).items() if sets}
    pairs = comparison_pairs(predictions)
    averages, differences = [], []
    for view in params.evaluate.views:
        counts = score_pairs(predictions["reference"], predictions["hypothesis"], view, params.normalization)
        clips = predictions[["model", "dataset", "id"]].assign(
            errors=(counts["sub"] + counts["del"] + counts["ins"]).to_numpy(), words=counts["ref_words"].to_numpy()
        )
        same = (settings.resamples, settings.seed, settings.confidence)
        averages.append(bootstrap.average_intervals(clips, groups, *same).assign(view=view))
        differences.append(bootstrap.difference_intervals(clips, groups, pairs, *same).assign(view=view))
    return pd.concat(averages, ignore_index=True), pd.concat(differences, ignore_index=True)


def threshold_table(scores: pd.DataFrame, view: str = "normalized") -> pd.DataFrame:
    """Average WER of each student per threshold λ: the data of the paper's threshold plot."""
    columns = ["student", "threshold", "avg all", "avg MSA", "avg dialects"]
    table = main_table(scores, "wer", view).reset_index()
    students = table[table["model"].str.contains(" λ=")]
    if students.empty:  # no student trained (every λ kept no pair): an empty table, not split's column-less frame
        return pd.DataFrame(columns=columns)
    parts = students["model"].str.split(" λ=", expand=True)
    return students.assign(student=parts[0], threshold=parts[1])[columns]


def device_name(device: torch.device) -> str:
    """The machine a timing was taken on, in words."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_model()} ({torch.get_num_threads()} threads)"


def efficiency(params: Params, entries: list[ModelEntry], test_sets: dict[str, PreparedSet]) -> pd.DataFrame:
    """Parameters, latency per clip (batch of one) and real-time factor of each model, side by side.

    Every model is loaded at once and the same clips (from the first test set) are timed one
    at a time, in turns: each clip by every model before the next clip, so that a slow spell
    of the machine falls on all models alike. A clip longer than a model's window (a chunked test
    clip) is timed whole, all its windows, as it is transcribed. Latency is the median over clips, the real-time
    factor the total time over the audio's duration, the speed-up the teacher's latency over
    the model's. (Held together, the paper profile's 16 models take roughly 30 GB in bf16,
    estimated from their parameter counts.)
    """
    device = resolve_device(params.device)
    clips = params.evaluate.latency_clips
    first = next((corpus.dataset for corpus in test_sets.values() if len(corpus.dataset)), None)
    if first is None:
        raise ValueError("every test set is empty after screening: nothing to time")
    rate = params.data.sampling_rate
    audio = [decode(a, rate).samples for a in first.select(range(min(clips, len(first))))["audio"]]
    seconds_of_audio = sum(len(a) for a in audio) / rate
    single = replace(params.evaluate.generation, batch_size=1)
    models = {entry.name: _load(entry, device, single, params) for entry in entries}
    warm_up = audio[:WARM_UP_CLIPS]
    title = f"timing {len(models)} models on {len(audio)} clips, one at a time"
    with progress(total=len(models) * (len(warm_up) + len(audio)), desc=title, unit="clip") as bar:
        for loaded in models.values():
            for clip in warm_up:
                generate(loaded, windows(loaded, clip), single)
                bar.update(1)
        seconds: dict[str, list[float]] = {name: [] for name in models}
        for clip in audio:
            for name, loaded in models.items():
                seconds[name].append(_timed_clip(loaded, clip, single))
                bar.update(1)
    table = pd.DataFrame(
        {
            "model": name,
            "parameters_M": models[name].parameters / 1e6,
            "latency_ms": 1000 * float(np.median(times)),
            "rtf": sum(times) / seconds_of_audio,
        }
        for name, times in seconds.items()
    )
    teacher_latency = table.loc[table["model"] == "teacher", "latency_ms"].iloc[0]
    return table.assign(speedup=teacher_latency / table["latency_ms"], device=device_name(device), clips=len(audio))


def windows(loaded: SpeechModel, clip: np.ndarray) -> list[np.ndarray]:
    """A clip as the model transcribes it: cut into its windows (as `kdlib.models.transcription` does), or whole."""
    window = loaded.window_samples
    return split_long(clip, window) if window else [clip]


def _timed_clip(loaded: SpeechModel, clip: np.ndarray, settings: GenerationParams) -> float:
    """Wall time of transcribing one whole clip, every window of it (GPU work included)."""
    pieces = windows(loaded, clip)
    start = time.perf_counter()
    generate(loaded, pieces, settings)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
