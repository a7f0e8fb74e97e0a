"""Preflight: before `kdlib run` builds anything, check what the stages it will build need, all at once.

For each stage the plan builds:

- 01 (pseudo-label): every set it prepares (the pools in use, the test sets, and `data.teacher_train` when the
  teacher is trained here): a local folder exists and its `metadata.csv` is read by the same reader stage 01
  uses (`kdlib.corpus.preparation.read_audiofolder`), with the columns the params name; a hub set is reachable
  (one request, no retry: `kdlib.storage.hub.probe`) or, when not streamed, in the Hugging Face cache; a gated
  set is named as gated, with what to accept; its `data_dir` exists at its revision. Free disk under
  `cache_dir` against the prepared size of those sets (`kdlib.pipeline.sizing`).
- 01, 03, 04: the teacher (a hub model reachable or cached, a checkpoint folder, Whisper's tokenizer file for a
  random one, the registry packages of a `package` one); 04: every baseline (`evaluate.baselines`).
- 01, 03, 04 (the launched stages): the GPUs torch sees, the launch mode the runner will use (`launch_processes`,
  as `kdlib.run.launch_command`), and the hours of 01 and 03 on them (`kdlib.pipeline.sizing`: from a GPU
  record under `benchmarks/results/`, else "unknown", with the sizing model's figure at its assumed rate).

Each finding is one line naming the set or resource; a problem says what to do. `kdlib run` prints the
findings after the plan (`--plan` too) and, when there is a problem, every problem line on stderr and exits 2
before anything is prepared, downloaded or written.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kdlib.config import DatasetSpec, Params, params_arguments, pools_in_use, safe_component
from kdlib.pipeline import sizing
from kdlib.pipeline.graph import Stage
from kdlib.storage import hub

Level = Literal["ok", "note", "problem"]
RESULTS = Path("benchmarks") / "results"  # GPU records of benchmarks/bench_transcribe.py, relative to the repository


class PreflightError(ValueError):
    """The preflight found problems (each printed on its own line): nothing was prepared."""


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str  # the set or resource: "test set 'MGB-3' (hub UBC-NLP/MGB3)", "teacher", "disk", "GPUs"
    text: str

    @property
    def line(self) -> str:
        return f"{self.subject}: {self.text}"


@dataclass(frozen=True)
class Preflight:
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == "problem"]

    def format(self) -> str:
        """The findings that are not problems, under a header that counts the problems (which the runner
        prints on stderr, one `error:` line each, so that each shows once in a terminal)."""
        if not self.findings:
            return "preflight: nothing to check"
        count = len(self.problems)
        lines = [f"preflight: {count} problem{'s' * (count != 1)} (below, on stderr)" if count else "preflight: ok"]
        lines += [f"  {finding.level:<4}  {finding.line}" for finding in self.findings if finding.level != "problem"]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Set:
    """A set stage 01 prepares, with its role."""

    spec: DatasetSpec
    role: str  # "pool 100K", "test", "teacher training"
    pool: str | None = None  # the pool it belongs to


def check(
    params: Params,
    stages: Sequence[Stage],
    *,
    gpus: Sequence[str] | None = None,
    timeout: float = hub.PROBE_TIMEOUT_S,
) -> Preflight:
    """The findings for building `stages` with `params`; `gpus`: the visible GPUs' names (default: torch's)."""
    commands = {stage.command for stage in stages}
    sets = _sets(params, commands)
    teacher_needed = bool(commands & {"pseudo-label", "distill", "evaluate"})
    baselines = list(params.evaluate.baselines) if "evaluate" in commands else []
    states = _probe_all(params, sets, teacher_needed, baselines, timeout)

    findings: list[Finding] = []
    clips: dict[str, int | None] = {}
    synthetic = [entry.spec.name for entry in sets if entry.spec.source == "synthetic"]
    if synthetic:
        text = "the embedded corpus, spoken here with espeak-ng"
        if shutil.which("espeak-ng") is None:
            text += " (not installed: needed unless the spoken corpus is in the cache; `make setup` installs it)"
        findings.append(
            Finding("ok" if shutil.which("espeak-ng") else "note", f"synthetic sets {', '.join(synthetic)}", text)
        )
    for entry in sets:
        found, count = _check_set(entry, params, states)
        findings += found
        clips[entry.spec.name] = count
    if teacher_needed:
        findings += _check_teacher(params, states)
    for source in baselines:
        findings += _check_model(f"baseline {source}", source, params, states)
    prepared = 0.0
    if "pseudo-label" in commands:
        disk, prepared = _check_disk(params, sets, clips)
        findings.append(disk)
    if "distill" in commands and _large_v2(params):
        findings.append(_check_students_disk(params, prepared))
    if any(stage.launched for stage in stages):
        visible = list(visible_gpus() if gpus is None else gpus)
        findings += _check_launch(params, visible)
        findings.append(_estimate_hours(params, commands, sets, clips, visible))
    return Preflight(tuple(findings))


def visible_gpus() -> list[str]:
    """The names of the GPUs torch sees (none on a CPU build or without a device)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def launch_processes(params: Params, gpus: int) -> int | None:
    """The processes the runner starts a heavy stage with under `accelerate launch` (`launch.num_processes`,
    else one per visible GPU; with `launch.config_file`, the file's count when num_processes is null: 0), or
    None when the stage runs in the runner's own process."""
    settings = params.launch
    processes = settings.num_processes or gpus
    if settings.config_file is None and processes <= 1:
        return None
    return settings.num_processes or (0 if settings.config_file is not None else processes)


# ------------------------------------------------------------------------------------------------ sets


def _sets(params: Params, commands: set[str]) -> list[_Set]:
    if "pseudo-label" not in commands:
        return []
    sets = [_Set(spec, f"pool {name}", name) for name in pools_in_use(params) for spec in params.data.pool(name)]
    sets += [_Set(spec, "test") for spec in params.data.test]
    if params.teacher.source == "train":
        sets += [_Set(spec, "teacher training") for spec in params.data.teacher_train]
    return sets


def _subject(entry: _Set) -> str:
    spec = entry.spec
    where = f"{spec.source} {spec.path}" if spec.path else spec.source
    revision = f"@{spec.revision}" if spec.source == "hub" and spec.revision else ""
    return f"{entry.role} set {spec.name!r} ({where}{revision})"


def _probe_all(
    params: Params, sets: Sequence[_Set], teacher: bool, baselines: Sequence[str], timeout: float
) -> dict[tuple[str, str, str | None], hub.HubState]:
    """Every hub repository the checks need, asked in parallel (each once, no retry)."""
    wanted: list[tuple[str, hub.Kind, str | None]] = [
        (entry.spec.path, "dataset", entry.spec.revision)
        for entry in sets
        if entry.spec.source == "hub" and entry.spec.path
    ]
    models = [params.teacher.model] if teacher and params.teacher.source == "hub" else []
    models += [source for source in baselines if not _local_model(source, params)]
    wanted += [(model, "model", None) for model in models]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        states = pool.map(lambda item: hub.probe(*item, timeout=timeout), wanted)
        return dict(zip(wanted, states))


def _check_set(entry: _Set, params: Params, states: dict) -> tuple[list[Finding], int | None]:
    """The findings for one set, and its clip count when known (for disk and hours)."""
    spec, subject = entry.spec, _subject(entry)
    named = sizing.clips_in_name(entry.pool or "") if entry.pool and len(params.data.pool(entry.pool)) == 1 else None
    if spec.source == "synthetic":  # one finding for them all (`check`)
        return [], 0
    if spec.source == "local":
        return _check_local(spec, subject, params)
    if not spec.path:
        return [Finding("problem", subject, "a hub set needs `path`, its hub id")], None
    state = states[spec.path, "dataset", spec.revision]
    advice = state.advice(spec.streaming)
    if advice is not None:
        return [Finding("problem", subject, advice)], _capped(spec, named)
    findings = []
    if state.status == "reachable":
        gated = f", gated ({state.detail}) and your account has access" if state.detail else ""
        findings.append(Finding("ok", subject, f"reachable on the hub{gated}"))
        if spec.data_dir and state.files:
            folder = spec.data_dir.strip("/") + "/"
            if not any(name.startswith(folder) for name in state.files):
                findings.append(Finding("problem", subject, f"the hub repository has no folder {folder!r} here"))
            elif any(name.startswith(f"{folder}partial-{spec.split}") for name in state.files):
                findings.append(
                    Finding("note", subject, f"the export holds only the first part of split {spec.split!r}")
                )
        count = hub.split_examples(state.card, spec.config, spec.split)
        return findings, _capped(spec, count if count is not None else named)
    how = "HF_HUB_OFFLINE is set" if state.status == "offline" else f"the hub cannot be reached ({state.detail})"
    findings.append(Finding("ok", subject, f"{how}; the copy in the Hugging Face cache will be read"))
    return findings, _capped(spec, named)


def _capped(spec: DatasetSpec, count: int | None) -> int | None:
    if spec.max_samples is None:
        return count
    return spec.max_samples if count is None else min(count, spec.max_samples)


def _check_local(spec: DatasetSpec, subject: str, params: Params) -> tuple[list[Finding], int | None]:
    from kdlib.corpus.preparation import read_audiofolder  # here: it imports datasets

    if not spec.path:
        return [Finding("problem", subject, "a local set needs `path`, its folder")], None
    folder = params.resolve(spec.path)
    layout = f"audio files and a metadata.csv with the columns file_name and {spec.text_column}"
    if not folder.is_dir():
        return [
            Finding(
                "problem",
                subject,
                f"no folder {spec.path} (relative to the repository): make it ({layout}) or fix its `path`",
            )
        ], None
    try:
        raw = read_audiofolder(spec, folder)
    except (OSError, ValueError) as error:
        text = str(error).removeprefix(f"dataset {spec.name!r}: ")
        return [Finding("problem", subject, f"{' '.join(text.split())} ({layout})")], None
    wanted = [spec.text_column, spec.id_column, spec.variety_column]
    missing = [column for column in wanted if column and column not in raw.column_names]
    if missing:
        found = [column for column in raw.column_names if column != spec.audio_column]
        text = f"metadata.csv has no column {', '.join(map(repr, missing))} (found {found})"
        return [Finding("problem", subject, text)], None
    paths = [cell["path"] for cell in raw[spec.audio_column]]
    absent = sum(not os.path.isfile(path) for path in paths)
    if paths and absent == len(paths):
        text = f"none of the {len(paths)} audio files metadata.csv names is there, e.g. {_shown(paths[0], folder)}"
        return [Finding("problem", subject, text)], None
    findings = [Finding("ok", subject, f"{len(paths)} clips listed in metadata.csv")]
    if absent:
        example = next(path for path in paths if not os.path.isfile(path))
        text = (
            f"{absent} of {len(paths)} audio files are missing (skipped as 'missing'), e.g. {_shown(example, folder)}"
        )
        findings.append(Finding("note", subject, text))
    return findings, _capped(spec, len(paths))


def _shown(path: str, folder: Path) -> str:
    return os.path.relpath(path, folder)


# ------------------------------------------------------------------------------------------------ models


def _local_model(source: str, params: Params) -> bool:
    """A baseline that names a folder (as `kdlib.stages.evaluate` reads it), not a hub id."""
    return Path(source).is_dir() or params.resolve(source).is_dir() or source.startswith((".", "/", "~"))


def _check_teacher(params: Params, states: dict) -> list[Finding]:
    teacher = params.teacher
    if teacher.source == "hub":
        return _check_model("teacher", teacher.model, params, states)
    if teacher.source == "local":
        if (params.resolve(teacher.model) / "config.json").is_file():
            return [Finding("ok", "teacher", f"checkpoint folder {teacher.model}")]
        command = " ".join(params_arguments(params))
        text = f"no checkpoint in {teacher.model!r} (relative to the repository): make it with `kdlib teacher {command} --retrain`"
        return [Finding("problem", "teacher", text)]
    if teacher.source == "random":
        spec = importlib.util.find_spec("whisper")
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if any((Path(folder) / "assets" / "multilingual.tiktoken").is_file() for folder in folders):
            return [Finding("ok", "teacher", "random weights at teacher.architecture's shapes, made here")]
        text = "a random teacher needs openai-whisper's multilingual.tiktoken: pip install -e '.[smoke]'"
        return [Finding("problem", "teacher", text)]
    if teacher.source == "package":
        from kdlib.models import ctranslate2  # here: it imports torch and transformers

        try:
            ctranslate2.package_files()
        except ctranslate2.PackageError as error:
            return [Finding("problem", "teacher", str(error))]
        return [Finding("ok", "teacher", f"{teacher.model} from the registry packages, converted here once")]
    return [Finding("ok", "teacher", "trained here from data.teacher_train (its sets are checked above)")]


def _check_model(subject: str, source: str, params: Params, states: dict) -> list[Finding]:
    if _local_model(source, params):
        folder = Path(source) if Path(source).is_dir() else params.resolve(source)
        if (folder / "config.json").is_file():
            return [Finding("ok", subject, "checkpoint folder")]
        return [Finding("problem", f"{subject}", "no checkpoint (config.json) in that folder: fix the path")]
    state = states[source, "model", None]
    advice = state.advice()
    if advice is not None:
        return [Finding("problem", f"{subject} (hub {source})", advice)]
    if state.status == "reachable":
        return [Finding("ok", f"{subject} (hub {source})", "reachable on the hub")]
    return [Finding("ok", f"{subject} (hub {source})", "not reachable now; the copy in the Hugging Face cache is used")]


# ------------------------------------------------------------------------------------------ disk, GPUs, hours


def _prepared_already(params: Params, spec: DatasetSpec) -> bool:
    """Whether the cache holds a prepared copy of a set of this name (from an earlier run of this profile)."""
    folder = params.cache_path / "prepared"
    return folder.is_dir() and any(folder.glob(f"{safe_component(spec.name)}-*/prepared.json"))


def _free(folder: Path) -> tuple[int, int]:
    """Free bytes on the file system that holds `folder` (or would: its nearest existing parent), and its device."""
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    return shutil.disk_usage(existing).free, os.stat(existing).st_dev


def _check_disk(params: Params, sets: Sequence[_Set], clips: dict[str, int | None]) -> tuple[Finding, float]:
    """The finding on the disk the sets to prepare need under cache_dir, and that need in bytes."""
    to_prepare = [entry.spec for entry in sets if entry.spec.source != "synthetic"]
    fresh = [spec for spec in to_prepare if not _prepared_already(params, spec)]
    known = {spec.name: clips[spec.name] for spec in fresh if clips.get(spec.name) is not None}
    unknown = [spec.name for spec in fresh if clips.get(spec.name) is None]
    needed = sum(sizing.prepared_bytes(count, params.data.audio_format) for count in known.values())
    free, _ = _free(params.cache_path)
    rate = sizing.FLAC_BYTES_PER_S if params.data.audio_format == "flac" else sizing.WAV_BYTES_PER_S
    model = f"{sum(known.values()):,} clips × {sizing.MEAN_SEGMENT_S:g} s × {rate / 1000:.1f} KB/s, the sizing model"
    unknown_text = f"; size unknown, not counted: {', '.join(unknown)}" if unknown else ""
    done = len(to_prepare) - len(fresh)
    done_text = f"; {done} set{'s' * (done != 1)} already prepared" if done else ""
    where = f"under cache_dir ({params.cache_dir})"
    if needed > free:
        text = (
            f"the sets to prepare need about {_gb(needed)} ({model}) and {_gb(free)} are free {where}: "
            f"free space there or point cache_dir at a larger disk (--set cache_dir=PATH){unknown_text}"
        )
        return Finding("problem", "disk", text), needed
    if not known:
        text = f"{_gb(free)} free {where}; nothing of known size to prepare{unknown_text}{done_text}"
        return Finding("ok", "disk", text), needed
    text = f"about {_gb(needed)} to prepare ({model}), {_gb(free)} free {where}{unknown_text}{done_text}"
    return Finding("ok", "disk", text), needed


def _check_students_disk(params: Params, prepared: float) -> Finding:
    """The disk the students to train keep under run_dir (weights and checkpoints, `kdlib.pipeline.sizing`),
    against the free space there (less what the prepared sets take when they share its file system)."""
    keep = params.distill.training.keep_checkpoints
    students = [run.student for run in params.distill.runs for _ in run.thresholds]
    needed = sum(sizing.student_bytes(student, keep) for student in students)
    free, device = _free(params.run_path)
    shared = prepared and _free(params.cache_path)[1] == device
    available = free - prepared if shared else free
    after = f" after the prepared sets ({_gb(prepared)})" if shared else ""
    model = (
        f"{len(students)} students: float32 weights and keep_checkpoints={keep} checkpoints of weights and AdamW "
        f"states, {sizing.WEIGHT_BYTES_PER_PARAMETER + keep * sizing.CHECKPOINT_BYTES_PER_PARAMETER} bytes per parameter"
    )
    where = f"under run_dir ({params.run_dir})"
    if needed > available:
        text = (
            f"the students keep about {_gb(needed)} ({model}) and {_gb(max(available, 0))} are free {where}{after}: "
            "free space, point run_dir at a larger disk, or keep fewer checkpoints "
            "(--set distill.training.keep_checkpoints=1)"
        )
        return Finding("problem", "disk, students", text)
    return Finding("ok", "disk, students", f"about {_gb(needed)} ({model}), {_gb(available)} free {where}{after}")


def _gb(size: float) -> str:
    if size < 1e9:
        return f"{size / 1e6:,.1f} MB"
    return f"{size / 1e9:,.1f} GB" if size < 10e9 else f"{size / 1e9:,.0f} GB"


def _check_launch(params: Params, gpus: Sequence[str]) -> list[Finding]:
    findings = []
    names = ", ".join(f"{count} × {name}" for name, count in _counted(gpus).items())
    if params.device == "cuda" and not gpus:
        import torch

        build = "a CPU build of torch: `make setup-cuda`" if torch.version.cuda is None else "check the driver"
        text = f"device: cuda, and torch {torch.__version__} sees no GPU ({build}; or CUDA_VISIBLE_DEVICES)"
        findings.append(Finding("problem", "GPUs", text))
    else:
        findings.append(Finding("ok", "GPUs", names if gpus else "none visible: stages run on the CPU"))
    config_file = params.launch.config_file
    if config_file is not None and not params.resolve(config_file).is_file():
        text = f"no file {config_file} (relative to the repository): make it with `accelerate config --config_file {config_file}`"
        findings.append(Finding("problem", "launch.config_file", text))
    processes = launch_processes(params, len(gpus))
    wanted = params.launch.num_processes
    if wanted and gpus and params.device != "cpu" and wanted > len(gpus):
        text = f"launch.num_processes is {wanted} and {len(gpus)} GPUs are visible: set it to at most {len(gpus)} (or null)"
        findings.append(Finding("problem", "launch", text))
    if processes is None:
        mode = "every stage and notebook in the runner's process"
    else:
        if config_file is not None:
            count = f", {processes} processes" if processes else ""
            mode = f"stages 01, 03 and 04 under `accelerate launch --config_file {config_file}`{count}"
        else:
            mode = f"stages 01, 03 and 04 under `accelerate launch --multi_gpu --num_processes {processes}`"
        mode += "; 02, 05 and the notebooks in the runner's process"
    findings.append(Finding("ok", "launch", mode))
    return findings


def _counted(names: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def _large_v2(params: Params) -> bool:
    """Whether the teacher is whisper-large-v2 (or its architecture): what the sizing model's counts are."""
    teacher = params.teacher
    if teacher.source in ("hub", "local"):
        return teacher.model.rstrip("/").endswith("whisper-large-v2")
    shape = teacher.architecture
    return teacher.source == "random" and (shape.d_model, shape.encoder_layers, shape.decoder_layers) == (1280, 32, 32)


def _estimate_hours(
    params: Params, commands: set[str], sets: Sequence[_Set], clips: dict[str, int | None], gpus: Sequence[str]
) -> Finding:
    if not gpus or params.device == "cpu":
        return Finding("note", "hours", "unknown: no GPU in use (the benchmarks and the sizing model are for GPUs)")
    if not _large_v2(params):
        return Finding("note", "hours", "unknown: the sizing model counts a whisper-large-v2 teacher and its students")
    processes = launch_processes(params, len(gpus))
    used = 1 if processes is None else processes or len(gpus)  # 0: as many as the accelerate config file says
    pool_clips = {}
    for name in pools_in_use(params):
        counts = [clips.get(spec.name) for spec in params.data.pool(name)]
        if "pseudo-label" not in commands:  # 01 is up to date: its sets were not checked, count from the name
            counts = [sizing.clips_in_name(name) if len(counts) == 1 else None]
        pool_clips[name] = None if None in counts else sum(counts)
    flops: dict[str, float] = {}
    unknown = [name for name, count in pool_clips.items() if count is None]
    if "pseudo-label" in commands:
        flops["01"] = sum(sizing.labelling_flops(count) for count in pool_clips.values() if count)
    if "distill" in commands:
        training = params.distill.training
        total = 0.0
        for run in params.distill.runs:
            count = pool_clips.get(run.pool or params.data.default_pool)
            if training.max_steps is not None:
                seen = training.max_steps * training.batch_size * training.gradient_accumulation_steps * used
            elif count:
                seen = (training.epochs or 1) * count * (1 - params.distill.eval_fraction)
            else:
                continue
            total += len(run.thresholds) * sizing.distillation_flops(seen, run.student)
        flops["03"] = total
    if not flops:
        return Finding("note", "hours", "only 04 is built: its hours are not estimated (they depend on the test sets)")
    gaps = f"; pools of unknown size not counted: {', '.join(unknown)}" if unknown else ""
    bound = "03 as if each λ kept every pair of its pool; 04 not estimated"
    measured = sizing.measured_rate(params.base_path / RESULTS, gpus[0])
    if measured is not None:
        rate, record = measured
        shown = ", ".join(f"{stage} ≈ {value / rate / used / 3600:,.1f} h" for stage, value in flops.items())
        return Finding("ok", "hours", f"on {used} × {gpus[0]}: {shown} (from {RESULTS / record}; {bound}){gaps}")
    shown = ", ".join(
        f"{stage} ≈ {value / sizing.ASSUMED_GPU_FLOPS / used / 3600:,.1f} h" for stage, value in flops.items()
    )
    return Finding(
        "note",
        "hours",
        f"unknown: no GPU record of {gpus[0]} under {RESULTS} (bash benchmarks/run_gpu.sh); at the sizing "
        f"model's assumed 40 % of an H100's bf16 peak, on {used} GPU{'s' * (used != 1)}: {shown} ({bound}){gaps}",
    )
