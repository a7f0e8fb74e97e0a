"""Reliability, round 3 (issue 25): one regression test per defect and per unclear answer of the probe round.

Each test states what the issue asks for: the right result, or one clear line that names the file, set,
param or stage and what to do, given before expensive work where it can be known then; exit codes; no
process left behind. Unit-level where the behaviour shows there (the validator, the readers, the
normaliser, the cache keys); the tests that need built products share one ci run built once for the
module (`built`) and work on copies of it (`fork`).

Every process the suite's tests start, directly or not, carries a mark in its environment, and
`no_process_left_behind` (tests/conftest.py) fails the session if one outlives it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, descendants, kill_all, running, wait_until, with_overrides
from test_hub_sources import AUDIO, TEXT, clip, pool_repo, write_parquet
from test_reliability import GOOD, audiofolder, local
from test_run import BUILDERS, GRAPH, repo  # noqa: F401 (repo: the fake repository fixture)

from kdlib import cli, run
from kdlib.config import DatasetSpec, NormalizationConfig, Params, ParamsError, load_params
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import AudioError, dataset_with_audio, decode, encode_audio
from kdlib.models.teacher import train_teacher
from kdlib.pipeline.graph import MissingProduct, Stage, StaleProduct, build, stage_named, staleness
from kdlib.scoring.metrics import score_pairs
from kdlib.scoring.normalizers import normalize
from kdlib.stages import evaluate
from kdlib.stages.evaluate import ModelEntry, threshold_table
from kdlib.stages.products import PreparedSet, read_corpora, read_students, read_test_sets


def start(script: str, *args: object, folder: Path, name: str) -> subprocess.Popen:
    """`python -c script args` with this kdlib, its output in `folder/name.out` and `.err`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out, err = open(folder / f"{name}.out", "w"), open(folder / f"{name}.err", "w")  # noqa: SIM115
    with out, err:  # the child holds its own descriptors
        return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, stdout=out, stderr=err)


def output(folder: Path, name: str, stream: str = "out") -> str:
    path = folder / f"{name}.{stream}"
    return path.read_text(errors="replace") if path.exists() else ""


def stop(*processes: subprocess.Popen) -> None:
    """Kill what is still running of `processes` and everything below them."""
    for process in processes:
        if process.poll() is None:
            kill_all(descendants(process.pid))
            process.kill()
        process.wait(timeout=30)


# ------------------------------------------------------------------------------------ a built ci run


@pytest.fixture(scope="module")
def built(ci_yaml: Path, ci_teacher: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ci profile's stages 01–03 built once for this module (the session cache shared): its params file."""
    root = tmp_path_factory.mktemp("round3")
    path = with_overrides(ci_yaml, root / "ci.yaml", run_dir=str(root / "runs"), reports_dir=str(root / "reports"))
    params = load_params(path)
    for name in ("01", "02", "03"):
        build(params, stage_named(name))
    return path


def fork(built: Path, tmp_path: Path, **overrides) -> Path:
    """A copy of the built run (its run folder copied) with its own params file in `tmp_path`."""
    shutil.copytree(load_params(built).run_path, tmp_path / "runs", symlinks=True)
    return with_overrides(
        built, tmp_path / "ci.yaml", run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports"), **overrides
    )


def linked_copy(cache: Path, target: Path, parts: tuple[str, ...]) -> Path:
    """Parts of a cache folder copied as hard links (cheap; never write into a file of the copy)."""
    for part in parts:
        if (cache / part).is_dir():
            shutil.copytree(cache / part, target / part, copy_function=os.link)
    return target


def with_cache(params: Params, tmp_path: Path, **data_changes) -> Params:
    return replace(params, cache_dir=str(tmp_path / "cache"), data=replace(params.data, **data_changes))


# ============================================================================================ defects


def test_1_no_trained_student_gives_an_empty_threshold_table() -> None:
    """Every pair dropped at the only λ of a run: no student is trained; 04's threshold table must be empty,
    not KeyError: 0."""
    scores = pd.DataFrame(
        {
            "model": ["teacher", "teacher"],
            "dataset": ["MSA", "PAL"],
            "variety": ["MSA", "PAL"],
            "view": ["normalized", "normalized"],
            "wer": [0.2, 0.5],
            "cer": [0.1, 0.3],
        }
    )
    table = threshold_table(scores, "normalized")
    assert table.empty and list(table.columns) == ["student", "threshold", "avg all", "avg MSA", "avg dialects"]


def test_2_duplicate_thresholds_are_refused_when_params_are_read(ci_yaml: Path) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(ci_yaml, settings=["filter.thresholds=[80, 80.0, null]", "filter.selected=80"])
    message = str(caught.value)
    assert "filter.thresholds" in message and "80" in message and "\n" not in message


@pytest.mark.parametrize(
    "runs",
    [
        "[{student: DW-1-1, thresholds: [80]}, {student: DW-1-1, thresholds: [80, null]}]",
        "[{student: DW-1-1, thresholds: [80]}, {student: DW-1-1, thresholds: [80], pool: default}]",
    ],
    ids=["twice", "default pool named"],
)
def test_3_the_same_student_pool_and_threshold_twice_is_refused(ci_yaml: Path, runs: str) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(ci_yaml, settings=[f"distill.runs={runs}"])
    message = str(caught.value)
    assert "distill.runs" in message and "DW-1-1" in message and "80" in message


BROKEN_MANIFESTS = {
    "truncated": '{"stage": "01_pseudo_label", "digest": "0123',
    "empty": "",
    "garbage": "\x00\x01 not json \ufffd",
    "empty object": "{}",
    "a list": "[]",
}


@pytest.mark.parametrize("text", BROKEN_MANIFESTS.values(), ids=BROKEN_MANIFESTS.keys())
def test_4_an_unreadable_manifest_is_named_and_its_stage_rebuilt(
    ci_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = with_overrides(ci_yaml, tmp_path / "ci.yaml", run_dir=str(tmp_path / "runs"))
    manifest = tmp_path / "runs" / "01_pseudo_label" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(text, encoding="utf-8")
    code = cli.main(["run", str(path), "--plan"])
    out, err = capsys.readouterr()
    assert code == 0, f"the plan is refused (exit {code}): {err.strip()}"
    (line,) = [line for line in out.splitlines() if line.strip().startswith("01_pseudo_label")]
    assert "build" in line and "manifest.json" in line, line  # why it is rebuilt: its manifest, named
    assert cli.main(["run", str(path), "--plan", "--force"]) == 0  # --force is not blocked either
    assert "Traceback" not in capsys.readouterr().err


def test_5_a_deleted_student_model_folder_makes_stage_03_stale_and_is_trained_again(
    built: Path, tmp_path: Path
) -> None:
    params = load_params(fork(built, tmp_path))
    model_dir = Path(next(record["model_dir"] for record in read_students(params) if record["model_dir"]))
    shutil.rmtree(model_dir)
    reason = staleness(params, stage_named("03"))
    assert reason is not None and model_dir.parent.name in reason, f"stage 03 with a deleted model folder: {reason}"
    build(params, stage_named("03"))  # what `--from 03 --force` does
    assert (model_dir / "model.safetensors").is_file(), "stage 03 'built' without training the deleted student"


REPO_PARAMS = """profile: elsewhere
run_dir: runs
reports_dir: reports
cache_dir: cache
data:
  test:
    - {name: set, source: local, path: data/set, variety: MSA}
"""


def test_6_a_relative_dataset_path_is_read_from_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository = tmp_path / "repository"
    (repository / "params").mkdir(parents=True)
    (repository / "pyproject.toml").write_text("[project]\nname = 'study'\n", encoding="utf-8")
    (repository / "params" / "p.yaml").write_text(REPO_PARAMS, encoding="utf-8")
    audiofolder(repository / "data" / "set", {"a.wav": GOOD})
    audiofolder(tmp_path / "elsewhere" / "data" / "set", {"b.wav": GOOD, "c.wav": GOOD})  # same relative path
    monkeypatch.chdir(tmp_path / "elsewhere")
    params = load_params(repository / "params" / "p.yaml")
    assert data.load_test_sets(params)["set"].dataset["id"] == ["set/a.wav"], "read the working directory's folder"


def test_6_a_relative_baseline_folder_is_read_from_the_repository(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = with_overrides(built, tmp_path / "ci.yaml")  # the built run; relative paths resolve against tmp_path
    (tmp_path / "models" / "base-x").mkdir(parents=True)
    (tmp_path / "models" / "base-x" / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    params = load_params(path, settings=["evaluate.baselines=[models/base-x]"])
    (entry,) = [entry for entry in evaluate.model_entries(params) if entry.kind == "baseline"]
    assert Path(entry.source).is_dir() and entry.name == "base-x", f"taken for a hub id: {entry}"


def test_7_stage_03_writes_nothing_into_the_prepared_set_cache(built: Path) -> None:
    """Stage 03 selected its training pairs by writing full copies (audio included) into the shared cache's
    prepared sets; a published entry must stay as it was published (and a read-only cache must do)."""
    strays = {}
    for record in (load_params(built).cache_path / "prepared").glob("*/prepared.json"):
        published = {"prepared.json", "skipped.csv", *json.loads(record.read_text(encoding="utf-8"))["shards"]}
        extra = sorted(path.name for path in record.parent.iterdir() if path.name not in published)
        if extra:
            strays[record.parent.name] = extra
    assert not strays, f"files written into published prepared sets: {strays}"


@dataclasses.dataclass
class WindowedModel:
    """Stands in for a loaded model with a 1 s window (`kdlib.models.families.SpeechModel`'s interface); records the
    length of every clip it is given."""

    name: str = "teacher"
    window_samples: int = 16_000
    parameters: int = 1_000
    device: torch.device = torch.device("cpu")
    given: list[int] = dataclasses.field(default_factory=list)

    def generate(self, clips, generation) -> list[list[int]]:
        self.given.extend(len(clip) for clip in clips)
        return [[1] for _ in clips]

    def decode(self, token_ids, timestamps: bool = False) -> str:
        return "نص"


def test_8_real_time_factor_times_every_window_of_a_long_clip(
    ci_params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate, model = 16_000, WindowedModel()
    samples = np.full(int(3.5 * rate), 0.1, np.float32)  # a chunked test clip: 3.5 windows
    columns = {
        "id": ["MSA/long"],
        "audio": [{"bytes": encode_audio(samples, rate), "path": None}],
        "text": ["نص طويل"],
        "dataset": ["MSA"],
        "variety": ["MSA"],
        "duration_s": [3.5],
    }
    test_set = PreparedSet("MSA", "test", dataset_with_audio(columns, data.features(rate)), pd.DataFrame())
    monkeypatch.setattr(evaluate, "_load", lambda *args, **kwargs: model)
    params = replace(ci_params, evaluate=replace(ci_params.evaluate, latency_clips=1))
    table = evaluate.efficiency(params, [ModelEntry("teacher", "teacher", "teacher")], {"MSA": test_set})
    given = model.given  # warm-up and timed clips
    assert max(given) <= model.window_samples, (
        f"a clip of {max(given)} samples was timed whole on a model of a {model.window_samples}-sample window: "
        "the model reads its first window, the RTF counts all its seconds"
    )
    assert sum(given) >= len(samples) and table["rtf"].notna().all()


FORMAT_CHARACTERS = {
    "U+200F RLM": "\u200f",
    "U+200E LRM": "\u200e",
    "U+061C ALM": "\u061c",
    "U+200D ZWJ": "\u200d",
    "U+202B RLE": "\u202b",
    "U+2066 LRI": "\u2066",
    "U+00AD soft hyphen": "\u00ad",
}


@pytest.mark.parametrize("mark", FORMAT_CHARACTERS.values(), ids=FORMAT_CHARACTERS.keys())
def test_9_invisible_format_characters_do_not_count_in_the_normalized_view(mark: str) -> None:
    clean = "ذهب الولد إلى المدرسة"
    marked_text = f"{mark}ذهب الو{mark}لد{mark} إلى المدرسة{mark}"  # looks the same
    assert normalize(marked_text) == normalize(clean)
    assert score_pairs([clean], [marked_text], "normalized", NormalizationConfig())["wer"].tolist() == [0.0]


@pytest.mark.parametrize("column", ["text", "gender"])
def test_10_a_non_string_text_or_variety_column_is_named(ci_params: Params, tmp_path: Path, column: str) -> None:
    """An int label (text) or FLEURS' int `gender` used as the variety column: prepared as text, or one line
    naming the set and the column, not an AttributeError or an Arrow error naming neither."""
    columns: dict[str, list] = {"audio": [clip(), clip()], "text": TEXT[:2]}
    features: dict = {"audio": AUDIO, "text": datasets.Value("string")}
    if column == "text":
        columns["text"], features["text"] = [1, 2], datasets.Value("int64")
    else:
        columns["gender"], features["gender"] = [0, 1], datasets.Value("int64")
    write_parquet(tmp_path / "hub-copy" / "data" / "test-00000-of-00001.parquet", columns, features)
    spec = DatasetSpec(
        name="numbers",
        source="hub",
        path=str(tmp_path / "hub-copy"),
        split="test",
        variety=None if column == "gender" else "MSA",
        variety_column="gender" if column == "gender" else None,
    )
    try:
        corpus = data.prepare(spec, with_cache(ci_params, tmp_path), "test")
    except ValueError as error:
        assert "'numbers'" in str(error) and f"'{column}'" in str(error) and "\n" not in str(error), error
    else:
        assert column == "gender", "an int transcript was prepared as text"
        assert corpus.dataset["variety"] == ["0", "1"]


LOADER = """
import time
from dataclasses import dataclass
import numpy as np
from kdlib.corpus.loader import planned_loader

@dataclass
class Batch:  # as kdlib.models.transcription.AudioBatch: decoded clips, passed to the main process pickled (not as tensors)
    ids: list
    pieces: list

def make(index):  # 8 clips of 5 s: more than a pipe holds
    return Batch([f"clip-{i}" for i in range(8)], [np.full(80_000, index, np.float32) for _ in range(8)])

batches = iter(planned_loader(8, make, 1))
next(batches)
print("reading", flush=True)
time.sleep(300)
"""


def test_11_a_killed_run_leaves_no_loader_worker_behind(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a scheduler) of a process reading batches through a DataLoader worker: the
    worker must not outlive it (it stayed, reparented to init, holding its memory)."""
    process = start(LOADER, folder=tmp_path, name="loader")
    workers: list[int] = []
    try:
        assert wait_until(lambda: "reading" in output(tmp_path, "loader") or process.poll() is not None, 120)
        assert process.poll() is None, output(tmp_path, "loader", "err")
        workers = descendants(process.pid)
        assert workers, "the loader started no worker process"
        process.kill()
        process.wait(timeout=30)
        wait_until(lambda: not running(workers), 10)
        left = running(workers)
        assert not left, f"loader workers alive 10 s after their process was killed: {left}"
    finally:
        kill_all(running(workers))
        stop(process)


# ==================================================================================== unclear answers


def test_u1_a_hub_split_typo_names_the_set_and_the_splits(ci_params: Params, tmp_path: Path) -> None:
    pool_repo(tmp_path / "hub-copy")
    spec = DatasetSpec(name="pool-copy", source="hub", path=str(tmp_path / "hub-copy"), split="tarin")
    with pytest.raises(ValueError) as caught:
        data.prepare(spec, with_cache(ci_params, tmp_path), "train")
    message = str(caught.value)
    assert "'pool-copy'" in message and "tarin" in message and "'train'" in message, message


def test_u2_a_student_deeper_than_a_local_teacher_is_refused_when_params_are_read() -> None:
    with pytest.raises(ParamsError) as caught:  # models/tiny-teacher: 4 encoder and 4 decoder layers
        load_params(REPO / "params" / "tiny.yaml", settings=["distill.runs=[{student: DW-6-2, thresholds: [80]}]"])
    message = str(caught.value)
    assert "distill.runs[0].student" in message and "DW-6-2" in message and "tiny-teacher" in message, message


def test_u3_a_student_name_with_leading_zeros_is_not_a_second_student(ci_yaml: Path) -> None:
    runs = "[{student: DW-1-1, thresholds: [80]}, {student: DW-01-1, thresholds: [80]}]"
    with pytest.raises(ParamsError) as caught:
        load_params(ci_yaml, settings=[f"distill.runs={runs}"])
    assert "DW-01-1" in str(caught.value) and "DW-1-1" in str(caught.value)


def test_u4_an_oversized_params_file_is_refused_before_it_is_parsed(
    ci_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "w", encoding="utf-8") as handle:
        handle.write(ci_yaml.read_text(encoding="utf-8"))
        handle.write(("# " + "x" * 98 + "\n") * 500_000)  # 50 MB of comments: valid, and parsed by every notebook
    parse = yaml.load

    def guarded(stream, Loader=None):  # noqa: N803 (yaml's name)
        if len(stream) > 1 << 20:
            raise AssertionError(f"a {len(stream) / 1e6:.0f} MB params file was parsed (no size limit)")
        return parse(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "load", guarded)
    with pytest.raises(ParamsError) as caught:
        load_params(big)
    message = str(caught.value)
    assert str(big) in message and re.search(r"\bMi?B\b", message), message


OUT_OF_RANGE = {
    "seed 2^64": "distill.training.seed=18446744073709551616",
    "unknown language": "pseudo_label.generation.language=zz",
    "max_new_tokens": "evaluate.generation.max_new_tokens=100000",
}


@pytest.mark.parametrize("setting", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_u5_out_of_range_settings_name_their_key(ci_yaml: Path, setting: str) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(ci_yaml, settings=[setting])
    assert setting.split("=")[0] in str(caught.value) and "\n" not in str(caught.value)


REVERSED = {
    "speed_wpm reversed": "data.synthetic.speed_wpm=[175, 125]",
    "pitch reversed": "data.synthetic.pitch=[75, 25]",
    "cut_keep above 1": "data.synthetic.cut_keep=[0.5, 1.5]",
}


@pytest.mark.parametrize("setting", REVERSED.values(), ids=REVERSED.keys())
def test_u6_reversed_ranges_and_cut_keep_above_one_are_refused(ci_yaml: Path, setting: str) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(ci_yaml, settings=[setting])
    assert setting.split("=")[0] in str(caught.value)


def test_u7_an_edited_prediction_cache_is_not_published_silently(built: Path, tmp_path: Path) -> None:
    params = load_params(fork(built, tmp_path))
    entries = evaluate.model_entries(params)[:1]  # the teacher
    test_sets = {name: corpus for name, corpus in read_test_sets(params).items() if len(corpus.dataset)}
    evaluate.predict_all(params, entries, test_sets)
    (cached,) = (params.run_path / "evaluation" / "models").glob("*.parquet")
    frame = pd.read_parquet(cached)
    frame.loc[0, "hypothesis"] = "EDITED"
    frame.to_parquet(cached, index=False)
    try:
        published = evaluate.predict_all(params, entries, test_sets)
    except (RuntimeError, ValueError, OSError) as error:  # or one line naming the file
        assert cached.name in str(error), error
    else:
        assert "EDITED" not in published["hypothesis"].tolist(), "an edited prediction cache was published as it is"


def test_u8_a_wiped_cache_makes_stage_01_stale(built: Path, tmp_path: Path) -> None:
    cache = linked_copy(load_params(built).cache_path, tmp_path / "cache", ("corpus", "prepared", "teacher"))
    params = load_params(fork(built, tmp_path, cache_dir=str(cache)))
    build(params, stage_named("01"))  # the run's prepared sets and teacher are now those of this cache
    assert staleness(params, stage_named("01")) is None
    shutil.rmtree(cache)
    assert staleness(params, stage_named("01")) is not None, "the plan says 'up to date' with the cache wiped"
    with pytest.raises((MissingProduct, StaleProduct)):
        read_corpora(params)


SLOW_BUILD = """
import sys, time
import kdlib.run

def slow_build(params, stage, graph=None, **options):  # a stage's builder at work
    print("building", stage.name, flush=True)
    time.sleep(120)
    return {}

kdlib.run.build = slow_build
from kdlib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_u9_sigterm_is_one_line_exit_143_and_recorded(ci_yaml: Path, tmp_path: Path) -> None:
    path = with_overrides(
        ci_yaml, tmp_path / "ci.yaml", run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports")
    )
    log = tmp_path / "reports" / "run_log.json"
    log.parent.mkdir()
    previous = {"status": "ok", "wall_s": 1.0, "finished": "2026-01-01T00:00:00+00:00"}
    log.write_text(json.dumps({"command": "kdlib run ci.yaml", "notebooks": {"01_pseudo_label": previous}}))
    process = start(SLOW_BUILD, "run", path, "--only", "01", "--force", folder=tmp_path, name="run")
    try:
        building = lambda: "building 01_pseudo_label" in output(tmp_path, "run") or process.poll() is not None  # noqa: E731
        assert wait_until(building, 120) and process.poll() is None, output(tmp_path, "run", "err")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        stop(process)
    err = output(tmp_path, "run", "err").strip()
    assert process.returncode == 128 + signal.SIGTERM, f"exit {process.returncode}, stderr {err[-300:]!r}"
    assert "Traceback" not in err and re.search(r"SIGTERM|terminated", err.splitlines()[-1], re.IGNORECASE), err
    entry = json.loads(log.read_text())["notebooks"]["01_pseudo_label"]
    assert entry["status"] != "ok", "the log pairs the new command with the previous run's 'ok'"


TEACHER = """
import sys, time
from pathlib import Path
import kdlib.models.teacher

log, release = Path(sys.argv[2]), Path(sys.argv[3])
trained = kdlib.models.teacher.train

def logged(*args, **kwargs):  # training starts: say so, then wait for the test's word
    with open(log, "a") as handle:
        handle.write("train\\n")
    deadline = time.time() + 120
    while not release.exists() and time.time() < deadline:
        time.sleep(0.05)
    return trained(*args, **kwargs)

kdlib.models.teacher.train = logged
from kdlib.config import load_params
from kdlib.models.teacher import find_teacher
print(find_teacher(load_params(sys.argv[1])), flush=True)
"""


def test_u10_two_profiles_train_a_shared_teacher_once(ci_yaml: Path, ci_teacher: str, tmp_path: Path) -> None:
    cache = linked_copy(load_params(ci_yaml).cache_path, tmp_path / "cache", ("corpus", "prepared"))  # no teacher
    raw = yaml.safe_load(ci_yaml.read_text(encoding="utf-8"))
    raw["teacher"]["training"].update(max_steps=2, warmup_steps=0, save_every=0)
    raw["data"]["loader_workers"] = 0
    for profile in ("a", "b"):
        raw.update(profile=profile, run_dir=str(tmp_path / f"runs-{profile}"), cache_dir=str(cache))
        (tmp_path / f"{profile}.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    log, release = tmp_path / "trainings.log", tmp_path / "release"
    trainings = lambda: log.read_text().count("train") if log.exists() else 0  # noqa: E731
    waiting = lambda: any("waiting for" in output(tmp_path, name, "err") for name in "ab")  # noqa: E731
    processes = [start(TEACHER, tmp_path / f"{name}.yaml", log, release, folder=tmp_path, name=name) for name in "ab"]
    try:  # one trains (held until released); the other trains too, or waits for it and says so
        ended = lambda: any(process.poll() is not None for process in processes)  # noqa: E731
        wait_until(lambda: trainings() > 1 or (trainings() and waiting()) or ended(), 120)
        release.touch()
        for process in processes:
            process.wait(timeout=120)
    finally:
        release.touch()
        stop(*processes)
    assert trainings() == 1, f"the teacher was trained {trainings()} times at once into one cache entry"
    assert waiting(), "one profile waited for the other without a word"
    assert [process.returncode for process in processes] == [0, 0], output(tmp_path, "b", "err")[-2000:]
    assert output(tmp_path, "a") == output(tmp_path, "b")  # the same teacher folder


def test_u11_the_same_profile_twice_at_once_says_so(ci_yaml: Path, tmp_path: Path) -> None:
    path = with_overrides(
        ci_yaml, tmp_path / "ci.yaml", run_dir=str(tmp_path / "runs-twice"), reports_dir=str(tmp_path / "reports")
    )
    arguments = ("run", path, "--only", "01", "--force")
    first = start(SLOW_BUILD, *arguments, folder=tmp_path, name="first")
    second = None
    try:
        assert wait_until(lambda: "building" in output(tmp_path, "first") or first.poll() is not None, 120)
        assert first.poll() is None, output(tmp_path, "first", "err")
        second = start(SLOW_BUILD, *arguments, folder=tmp_path, name="second")
        said = lambda: "runs-twice" in output(tmp_path, "second", "err")  # noqa: E731
        wait_until(lambda: "building" in output(tmp_path, "second") or said() or second.poll() is not None, 60)
        built_twice = "building" in output(tmp_path, "second")
    finally:
        stop(first, *([second] if second else []))
    assert not built_twice, "the same profile's stage is built by two runs at once, without a word"
    assert said(), f"the second run does not name the run folder in use: {output(tmp_path, 'second', 'err')!r}"


def test_u12_an_unreachable_hub_teacher_is_one_line_naming_it(
    ci_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # unreachable, at once
    path = with_overrides(
        ci_yaml, tmp_path / "ci.yaml", run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports")
    )
    settings = ["--set", "teacher.source=hub", "--set", "teacher.model=kdlib-test/no-such-model"]
    code = cli.main(["run", str(path), "--only", "01", *settings])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err[-3000:]  # the preflight's answer, before any work
    (line,) = [line for line in err.splitlines() if "kdlib-test/no-such-model" in line]
    assert line.startswith("error: teacher (hub kdlib-test/no-such-model): "), line
    assert "nothing was prepared" in err.strip().splitlines()[-1]


def test_u13_a_symlink_loop_is_not_reported_as_missing(tmp_path: Path) -> None:
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    with pytest.raises(AudioError) as caught:
        decode({"bytes": None, "path": str(loop)})
    assert caught.value.reason != "missing", caught.value
    assert re.search(r"symbolic link|loop", caught.value.detail), caught.value.detail


def test_u14_disk_full_while_rendering_names_the_stage_and_leaves_no_half_notebook(
    repo: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import papermill.iorw

    write = papermill.iorw.LocalHandler.write
    writes: list[str] = []

    def filling(self, buf, path):  # the disk fills up on papermill's second save: half the notebook is written
        writes.append(path)
        if len(writes) < 2:
            return write(self, buf, path)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(buf[: len(buf) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(papermill.iorw.LocalHandler, "write", filling)
    with pytest.raises((OSError, RuntimeError)) as caught:
        run.run_pipeline(repo / "params" / "test.yaml", only=["01"], graph=GRAPH)
    message = str(caught.value)
    assert "01_first" in message and os.strerror(errno.ENOSPC) in message, message
    notebook = repo / "reports" / "test" / "01_first.ipynb"
    if notebook.exists():
        json.loads(notebook.read_text(encoding="utf-8"))  # a whole notebook, or none


def test_u15_long_clips_does_not_change_training_or_teacher_sets(ci_params: Params, tmp_path: Path) -> None:
    """`data.long_clips` is about test sets: a pool or teacher set is the same entry (and key) either way."""
    spec = local("pool", audiofolder(tmp_path / "pool", {"a.wav": GOOD}))
    folders = {
        (long_clips, purpose): data.prepare(
            spec, with_cache(ci_params, tmp_path, long_clips=long_clips), purpose
        ).folder
        for long_clips in ("skip", "chunk")
        for purpose in ("train", "teacher", "test")
    }
    for purpose in ("train", "teacher"):
        assert folders["skip", purpose] == folders["chunk", purpose], f"long_clips changed the key of a {purpose} set"
    assert folders["skip", "test"] != folders["chunk", "test"]


def test_u16_a_teacher_cache_key_covers_what_changes_its_bytes(ci_yaml: Path, ci_teacher: str, tmp_path: Path) -> None:
    """A teacher trained with 1 and with 2 threads: the same bytes, or two cache keys."""
    session_cache = load_params(ci_yaml).cache_path
    quick = ["teacher.training.max_steps=2", "teacher.training.warmup_steps=0", "teacher.training.save_every=0"]
    trained = {}
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            cache = linked_copy(session_cache, tmp_path / f"cache-{count}", ("corpus", "prepared"))
            params = load_params(ci_yaml, settings=[f"cache_dir={cache}", "data.loader_workers=0", *quick])
            torch.set_num_threads(count)
            folder = train_teacher(params)
            trained[count] = (folder.parent.name, (folder / "model.safetensors").read_bytes())
    finally:
        torch.set_num_threads(threads)
    (one_key, one_bytes), (two_key, two_bytes) = trained[1], trained[2]
    assert one_key != two_key or one_bytes == two_bytes, f"two teachers of different bytes under one key {one_key}"


def test_u17_a_failed_run_records_no_machine_path(repo: Path) -> None:  # noqa: F811
    leaky = "\n\ndef leaky(params):\n    raise FileNotFoundError(f\"no file {params.run_path / 'input.txt'}\")\n"
    (repo / "fakestages.py").write_text(BUILDERS + leaky, encoding="utf-8")
    sys.modules.pop("fakestages", None)
    graph = (Stage("01_first", "first", "fakestages:leaky", (), ("device",), (), "first"), GRAPH[1])
    with pytest.raises(run.StageError):
        run.run_pipeline(repo / "params" / "test.yaml", graph=graph)
    reports = repo / "reports" / "test"
    for name in ("run_log.json", "index.html"):
        text = (reports / name).read_text(encoding="utf-8")
        assert "input.txt" in text and str(repo.resolve()) not in text, f"{name} names a machine path"
