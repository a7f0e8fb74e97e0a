"""The preflight of `kdlib run`: every problem of a profile found before any work, one line each, exit 2.

The hub is a small HTTP server on 127.0.0.1 that answers as the Hub API does (`/api/datasets/<id>`, its
`auth-check`, the `X-Error-Code` headers huggingface_hub reads), reached through huggingface_hub's own client
(`HfApi`, its endpoint pointed at the server): a gated set, a missing one, one that drops the connection.
"Offline" is huggingface_hub's offline mode (`HF_HUB_OFFLINE`) or an endpoint where nothing listens. The
Hugging Face caches are empty folders of the test, so nothing counts as cached unless a test puts it there.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter, namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
import yaml
from conftest import REPO
from huggingface_hub import constants

from kdlib import cli
from kdlib.config import load_params
from kdlib.corpus import common_voice
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import decode
from kdlib.pipeline import preflight, sizing
from kdlib.pipeline.graph import STAGES
from kdlib.storage import hub

TEACHER = str(REPO / "models" / "tiny-teacher")
Usage = namedtuple("Usage", "total used free")

# the repositories the stand-in hub knows: id → the JSON of /api/datasets/<id> (gated: its gating mode)
REPOS = {
    "kdlib-test/open": {
        "gated": False,
        "siblings": [{"rfilename": "README.md"}, {"rfilename": "data/test-00000-of-00001.parquet"}],
        "cardData": {"dataset_info": {"splits": [{"name": "test", "num_examples": 2500}]}},
    },
    "kdlib-test/gated": {"gated": "manual", "siblings": [{"rfilename": "data/test-00000-of-00001.parquet"}]},
    "kdlib-test/granted": {"gated": "auto", "siblings": [{"rfilename": "data/test-00000-of-00001.parquet"}]},
}
GRANTED = {"kdlib-test/granted"}  # gated, and the (test) user has accepted its conditions
DROPPED = "kdlib-test/dropped"  # the server closes the connection: a network failure mid-way
BUSY = "kdlib-test/busy"  # the server answers 503


class HubAPI(BaseHTTPRequestHandler):
    """The Hub API's answers for dataset info and auth-check, as huggingface_hub reads them."""

    hits: Counter = Counter()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        prefix = "/api/datasets/"
        if not path.startswith(prefix):
            return self._answer(404, {"error": "not found"}, "EntryNotFound")
        rest = path[len(prefix) :]
        check = rest.endswith("/auth-check")
        repo_id = "/".join(rest.removesuffix("/auth-check").split("/")[:2])
        HubAPI.hits[repo_id] += 1
        if repo_id == DROPPED:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if repo_id == BUSY:
            return self._answer(503, {"error": "Service Unavailable"})
        if repo_id not in REPOS:
            return self._answer(401, {"error": "Repository Not Found"}, "RepoNotFound")
        if check:
            if REPOS[repo_id]["gated"] and repo_id not in GRANTED:
                message = f"Access to dataset {repo_id} is restricted. You must have access to it and be authenticated."
                return self._answer(403, {"error": message}, "GatedRepo")
            return self._answer(200, {})
        return self._answer(200, {"id": repo_id, "sha": "0" * 40, "private": False, **REPOS[repo_id]})

    def _answer(self, status: int, body: dict, error_code: str | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", body.get("error", ""))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty Hugging Face caches (datasets' and the hub's), online mode."""
    folders = {"datasets": tmp_path / "hf" / "datasets", "hub": tmp_path / "hf" / "hub"}
    for folder in folders.values():
        folder.mkdir(parents=True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", folders["datasets"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folders["hub"]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return folders


@pytest.fixture
def hub_api(caches, monkeypatch: pytest.MonkeyPatch):
    """The stand-in hub, serving on 127.0.0.1; huggingface_hub's endpoint points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    HubAPI.hits.clear()
    yield HubAPI.hits
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def nowhere(caches, monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint where nothing listens: the machine is offline as far as the hub goes."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")


def wav(path: Path, seconds: float = 1.0, audio_format: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = 0.2 * np.sin(2 * np.pi * 220 * np.arange(int(16_000 * seconds)) / 16_000)
    soundfile.write(path, samples.astype(np.float32), 16_000, format=audio_format)


def audiofolder(folder: Path, clips: int = 2) -> None:
    for index in range(clips):
        wav(folder / f"clip{index}.wav")
    names = "\n".join(f"clip{index}.wav,نص {index}" for index in range(clips))
    (folder / "metadata.csv").write_text(f"file_name,text\n{names}\n", encoding="utf-8")


def repository(root: Path, raw: dict, name: str = "test.yaml") -> Path:
    """A repository (a pyproject.toml marks it) holding the params file `raw`."""
    (root / "pyproject.toml").write_text("[project]\nname = 'fake'\n", encoding="utf-8")
    (root / "params").mkdir(exist_ok=True)
    path = root / "params" / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def profile(**data_sets) -> dict:
    return {
        "profile": "test",
        "run_dir": "runs/test",
        "reports_dir": "reports/test",
        "cache_dir": ".cache/kdlib",
        "device": "cpu",
        "data": {"train": [{"name": "pool-a", "source": "local", "path": "data/pool", "split": "train"}], **data_sets},
        "teacher": {"source": "local", "model": TEACHER},
        # within the shipped teacher's 96 positions (the default, 128, would be refused)
        "pseudo_label": {"generation": {"max_new_tokens": 80}},
        "evaluate": {"generation": {"max_new_tokens": 80}},
        "distill": {"runs": [{"student": "DW-2-2", "thresholds": [80]}]},
    }


def created(root: Path) -> list[str]:
    """What a run left in the repository besides the params, the data and the marker."""
    return sorted(p.name for p in root.iterdir() if p.name not in {"params", "data", "pyproject.toml", "hf"})


def problem_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ") and "nothing was prepared" not in line]


def test_each_problem_is_one_line_all_at_once_and_nothing_is_prepared(
    tmp_path: Path, hub_api: Counter, caches, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audiofolder(tmp_path / "data" / "pool")
    raw = profile(
        test=[
            {"name": "missing-set", "source": "local", "path": "data/nowhere", "variety": "MSA"},
            {"name": "gated-set", "source": "hub", "path": "kdlib-test/gated", "variety": "MSA"},
            {"name": "open-set", "source": "hub", "path": "kdlib-test/open", "variety": "MSA"},
            {"name": "granted-set", "source": "hub", "path": "kdlib-test/granted", "variety": "EGY"},
            {"name": "dropped-set", "source": "hub", "path": DROPPED, "variety": "EGY"},
        ]
    )
    path = repository(tmp_path, raw)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda folder: Usage(10**12, 10**12 - 1000, 1000))

    assert cli.main(["run", str(path)]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    lines = problem_lines(err)
    assert len(lines) == 4, err
    (missing,) = [line for line in lines if "'missing-set'" in line]
    assert "no folder data/nowhere (relative to the repository): make it" in missing
    (gated,) = [line for line in lines if "'gated-set'" in line]
    assert "gated: accept its conditions on" in gated and "/datasets/kdlib-test/gated" in gated
    assert "hf auth login" in gated
    (dropped,) = [line for line in lines if "'dropped-set'" in line]
    assert "the Hugging Face Hub cannot be reached" in dropped and "not in the Hugging Face cache" in dropped
    (disk,) = [line for line in lines if line.startswith("error: disk:")]
    assert "need about" in disk and "are free under cache_dir (.cache/kdlib)" in disk and "--set cache_dir" in disk
    assert (
        err.strip().splitlines()[-1]
        == "error: the preflight found 4 problems (one per line above): nothing was prepared"
    )
    assert "Traceback" not in err
    # what is fine is said so, on stdout
    assert "ok    test set 'open-set' (hub kdlib-test/open): reachable on the hub" in out
    assert "test set 'granted-set' (hub kdlib-test/granted): reachable on the hub, gated (auto) and your account" in out
    assert "ok    pool default set 'pool-a' (local data/pool): 2 clips listed in metadata.csv" in out
    assert "ok    teacher: checkpoint folder" in out
    assert "ok    launch: every stage and notebook in the runner's process" in out
    # one request per repository (two for a gated one: its info, its auth-check), no retry
    assert hub_api == {"kdlib-test/gated": 2, "kdlib-test/granted": 2, "kdlib-test/open": 1, DROPPED: 1}
    assert created(tmp_path) == []  # no runs/, reports/ or .cache/
    assert not any(caches["datasets"].iterdir()) and not any(caches["hub"].iterdir())


def test_plan_shows_the_preflight_and_exits_2_on_a_problem(
    tmp_path: Path, nowhere, capsys: pytest.CaptureFixture[str]
) -> None:
    audiofolder(tmp_path / "data" / "pool")
    path = repository(tmp_path, profile(test=[{"name": "fleurs", "source": "hub", "path": "google/fleurs"}]))
    assert cli.main(["run", str(path), "--plan"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert "plan for test (5 stages)" in out and "preflight: 1 problem (below, on stderr)" in out
    (line,) = problem_lines(err)
    assert line.startswith("error: test set 'fleurs' (hub google/fleurs): the Hugging Face Hub cannot be reached (")
    assert created(tmp_path) == []


def test_offline_mode_is_respected_and_a_cached_set_passes(
    tmp_path: Path, caches, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # never asked
    audiofolder(tmp_path / "data" / "pool")
    raw = profile(
        test=[
            {"name": "not-cached", "source": "hub", "path": "kdlib-test/open"},
            {"name": "cached", "source": "hub", "path": "kdlib-test/cached"},
        ]
    )
    (caches["datasets"] / "kdlib-test___cached" / "default" / "0.0.0" / "0123abcd").mkdir(parents=True)
    checked = preflight.check(load_params(repository(tmp_path, raw)), STAGES, gpus=[])
    (problem,) = checked.problems
    assert problem.subject == "test set 'not-cached' (hub kdlib-test/open)"
    assert problem.text.startswith("HF_HUB_OFFLINE is set and it is not in the Hugging Face cache: unset")
    cached = [finding for finding in checked.findings if "'cached'" in finding.subject]
    assert [(f.level, f.text) for f in cached] == [
        ("ok", "HF_HUB_OFFLINE is set; the copy in the Hugging Face cache will be read")
    ]


def test_a_local_folder_needs_readable_metadata_with_its_columns(tmp_path: Path, caches) -> None:
    for name in ("pool", "no-metadata", "latin1", "no-text", "no-audio"):
        (tmp_path / "data" / name).mkdir(parents=True)
    audiofolder(tmp_path / "data" / "pool")
    (tmp_path / "data" / "latin1" / "metadata.csv").write_bytes("file_name,text\na.wav,caf\xe9\n".encode("latin-1"))
    audiofolder(tmp_path / "data" / "no-text")
    audiofolder(tmp_path / "data" / "no-audio")
    for clip in (tmp_path / "data" / "no-audio").glob("*.wav"):
        clip.unlink()
    sets = [
        {"name": name, "source": "local", "path": f"data/{name}", **extra}
        for name, extra in [
            ("no-metadata", {}),
            ("latin1", {}),
            ("no-text", {"text_column": "sentence"}),
            ("no-audio", {}),
        ]
    ]
    checked = preflight.check(load_params(repository(tmp_path, profile(test=sets))), STAGES, gpus=[])
    texts = {finding.subject.split("'")[1]: finding.text for finding in checked.problems}
    assert texts["no-metadata"].startswith("no metadata.csv in local folder")
    assert "must be UTF-8 text" in texts["latin1"]
    assert texts["no-text"] == "metadata.csv has no column 'sentence' (found ['text', 'id'])"
    assert texts["no-audio"] == "none of the 2 audio files metadata.csv names is there, e.g. clip0.wav"
    assert len(checked.problems) == 4


def test_a_hub_set_offline_is_one_line_without_retry_at_load_time(
    tmp_path: Path, hub_api: Counter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caches
) -> None:
    """Without the preflight (`kdlib pseudo-label` alone), the hub set is probed once before datasets reads it."""
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *a, **k: pytest.fail("load_dataset was called"))
    audiofolder(tmp_path / "data" / "pool")
    path = repository(tmp_path, profile(test=[{"name": "dropped-set", "source": "hub", "path": DROPPED}]))
    assert cli.main(["pseudo-label", str(path)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error")]  # other lines: progress
    assert "Traceback" not in err
    assert line.startswith("error: dataset 'dropped-set' (hub kdlib-test/dropped): the Hugging Face Hub cannot be")
    assert hub_api[DROPPED] == 1  # one request, no retry


def test_an_unreachable_but_cached_set_is_read_offline(tmp_path: Path, nowhere, caches, monkeypatch) -> None:
    (caches["datasets"] / "kdlib-test___cached" / "default" / "0.0.0" / "0123abcd").mkdir(parents=True)
    seen = []

    def load_dataset(path, name=None, **kwargs):
        seen.append((path, constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE))
        return datasets.Dataset.from_dict({"audio": [], "text": []})

    monkeypatch.setattr(data.datasets, "load_dataset", load_dataset)
    spec = profile()["data"]["train"][0] | {"name": "cached", "source": "hub", "path": "kdlib-test/cached"}
    raw = profile(test=[spec])
    params = load_params(repository(tmp_path, raw))
    data.load_raw(params.data.test[0], params)
    assert seen == [("kdlib-test/cached", True, True)]  # read in offline mode: no request, no retry
    assert constants.HF_HUB_OFFLINE is False and datasets.config.HF_HUB_OFFLINE is False  # and put back


def mozilla_download(folder: Path, clips: int = 3) -> None:
    """Common Voice's locale folder as Mozilla ships it: clips/*.mp3 and test.tsv (tab-separated, unquoted)."""
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents"
    rows = [header]
    for index in range(clips):
        name = f"common_voice_ar_{1000 + index}.mp3"
        wav(folder / "clips" / name, 0.5, audio_format="MP3")
        rows.append(f'c{index}\t{name}\t{index}\tقال "نعم" {index}\t\t2\t0\t\t\t')
    (folder / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_common_voice_metadata_from_mozillas_download(tmp_path: Path, caches, capsys) -> None:
    folder = tmp_path / "ar"
    mozilla_download(folder)
    assert common_voice.main([str(folder)]) == 0
    assert capsys.readouterr().out.strip().endswith("metadata.csv: 3 clips")
    spec = load_params(
        repository(
            tmp_path,
            profile(
                test=[
                    {"name": "CV-15.0", "source": "local", "path": "ar", "text_column": "sentence", "id_column": "path"}
                ]
            ),
        )
    ).data.test[0]
    raw = data.read_audiofolder(spec, load_params(tmp_path / "params" / "test.yaml").resolve(spec.path))
    assert raw["sentence"] == [f'قال "نعم" {index}' for index in range(3)]  # the quote kept, not parsed
    assert raw["path"] == [f"common_voice_ar_{1000 + index}.mp3" for index in range(3)]
    clip = decode(raw[0]["audio"])  # Common Voice's MP3, as stage 01 decodes it
    assert clip.sampling_rate == 16_000 and abs(clip.duration_s - 0.5) < 0.1
    assert common_voice.main([str(tmp_path)]) == 2  # no test.tsv: one line
    assert capsys.readouterr().err.startswith(f"error: no {tmp_path / 'test.tsv'}: point at the locale folder")


def test_paper_public_passes_its_preflight_offline_except_for_the_network(
    tmp_path: Path, caches, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Common Voice made from a Mozilla-shaped download, offline, on 8 (named) GPUs with room on disk: the
    only problems left are the hub sources, each one line saying that HF_HUB_OFFLINE is set."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda folder: Usage(10**13, 0, 10**13))
    path = repository(
        tmp_path, yaml.safe_load((REPO / "params" / "paper-public.yaml").read_text()), "paper-public.yaml"
    )
    mozilla_download(tmp_path / "data" / "common_voice_15_0" / "ar")
    assert common_voice.main([str(tmp_path / "data" / "common_voice_15_0" / "ar")]) == 0
    params = load_params(path)
    checked = preflight.check(params, STAGES, gpus=["NVIDIA H100 80GB HBM3"] * 8)

    remaining = {finding.subject for finding in checked.problems}
    assert remaining == {
        "pool 100K set 'pool-100K' (hub UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_100K)",
        "pool 500K set 'pool-500K' (hub UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_500K)",
        "test set 'MGB-2' (hub UBC-NLP/MGB2-Eval)",
        "test set 'MGB-3' (hub UBC-NLP/MGB3)",
        "test set 'MGB-5' (hub UBC-NLP/MGB5)",
        "test set 'Fleurs' (hub google/fleurs@refs/convert/parquet)",
        "teacher (hub openai/whisper-large-v2)",
        *(f"baseline {model} (hub {model})" for model in params.evaluate.baselines),
    }
    assert all(finding.text.startswith("HF_HUB_OFFLINE is set") for finding in checked.problems)
    streamed = [f.text for f in checked.problems if f.subject.startswith("pool")]
    assert all("streamed from the hub while stage 01 runs" in text for text in streamed)
    shown = {finding.subject: finding.text for finding in checked.findings if finding.level != "problem"}
    assert shown["test set 'CV-15.0' (local data/common_voice_15_0/ar)"] == "3 clips listed in metadata.csv"
    assert shown["GPUs"] == "8 × NVIDIA H100 80GB HBM3"
    assert shown["launch"].startswith("stages 01, 03 and 04 under `accelerate launch --multi_gpu --num_processes 8`")
    clips = 600_000 + 3  # the pools by their names (offline), and Common Voice's rows
    assert shown["disk"].startswith(f"about {sizing.prepared_bytes(clips) / 1e9:,.0f} GB to prepare ({clips:,} clips")
    assert "size unknown, not counted: MGB-2, MGB-3, MGB-5, Fleurs" in shown["disk"]
    students = sum(sizing.student_size(run.student) * len(run.thresholds) for run in params.distill.runs)
    assert students == 13_263_301_120  # 14 students: DW-16-16 and DW-32-16 × 6, DW-8-8, DW-16-32
    assert shown["disk, students"].startswith(f"about {students * 28 / 1e9:,.0f} GB (14 students: float32 weights")
    assert shown["hours"].startswith("unknown: no GPU record of NVIDIA H100 80GB HBM3 under benchmarks/results")
    assert "on 8 GPUs: 01 ≈ " in shown["hours"] and ", 03 ≈ " in shown["hours"]


def test_hours_come_from_a_gpu_record_when_there_is_one(tmp_path: Path, caches, monkeypatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    raw = yaml.safe_load((REPO / "params" / "paper-public.yaml").read_text())
    raw["distill"]["runs"] = [{"student": "DW-16-16", "thresholds": [80, None]}]
    path = repository(tmp_path, raw, "paper-public.yaml")
    record = {
        "device": "NVIDIA H100 80GB HBM3",
        "arch": "large-v2",
        "matmul_TFLOP_per_s": 600.0,
        "rows": [
            {"method": "transformers pipeline", "fraction_of_floor": 0.3},
            {"method": "kdlib", "fraction_of_floor": 0.5},
        ],
    }
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "transcribe-large-v2-cuda.json").write_text(json.dumps(record), encoding="utf-8")
    (results / "transcribe-large-v2-cpu.json").write_text(json.dumps(record | {"device": "CPU: AMD EPYC"}))
    params = load_params(path)
    build = [stage for stage in STAGES if stage.command in ("pseudo-label", "distill")]
    checked = preflight.check(params, build, gpus=["NVIDIA H100 80GB HBM3"] * 8)
    (hours,) = [finding for finding in checked.findings if finding.subject == "hours"]
    rate = 600e12 * 0.5
    labelling = sizing.labelling_flops(100_000) / rate / 8 / 3600
    seen = 10 * 100_000 * (1 - params.distill.eval_fraction)
    distilling = 2 * sizing.distillation_flops(seen, "DW-16-16") / rate / 8 / 3600
    assert hours.level == "ok"
    assert hours.text.startswith(
        f"on 8 × NVIDIA H100 80GB HBM3: 01 ≈ {labelling:,.1f} h, 03 ≈ {distilling:,.1f} h "
        "(from benchmarks/results/transcribe-large-v2-cuda.json;"
    )


def test_a_cuda_profile_without_a_gpu_and_a_missing_launch_config(tmp_path: Path, caches) -> None:
    audiofolder(tmp_path / "data" / "pool")
    raw = profile() | {"device": "cuda", "launch": {"config_file": "node.yaml", "num_processes": 4}}
    checked = preflight.check(load_params(repository(tmp_path, raw)), STAGES, gpus=[])
    subjects = [finding.subject for finding in checked.problems]
    assert subjects == ["GPUs", "launch.config_file"]
    assert "sees no GPU" in checked.problems[0].text
    assert checked.problems[1].text.startswith("no file node.yaml (relative to the repository): make it with")
    raw["device"], raw["launch"] = "auto", {"num_processes": 16}
    (problem,) = preflight.check(load_params(repository(tmp_path, raw)), STAGES, gpus=["GPU"] * 8).problems
    assert problem.line == "launch: launch.num_processes is 16 and 8 GPUs are visible: set it to at most 8 (or null)"


def test_a_package_teacher_is_checked_as_one(tmp_path: Path, caches, monkeypatch) -> None:
    """`teacher.source: package`: its registry packages, named, not "trained here"."""
    from kdlib.models import ctranslate2

    audiofolder(tmp_path / "data" / "pool")
    raw = profile() | {"teacher": {"source": "package", "model": "openai/whisper-base"}}
    monkeypatch.setattr(ctranslate2, "package_files", lambda: None)
    (teacher,) = [
        f
        for f in preflight.check(load_params(repository(tmp_path, raw)), STAGES, gpus=[]).findings
        if f.subject == "teacher"
    ]
    assert teacher.line == "teacher: openai/whisper-base from the registry packages, converted here once"

    def missing():
        raise ctranslate2.PackageError("whisper-base comes from the registry packages and x is not installed: pip …")

    monkeypatch.setattr(ctranslate2, "package_files", missing)
    (problem,) = preflight.check(load_params(tmp_path / "params" / "test.yaml"), STAGES, gpus=[]).problems
    assert problem.line.startswith("teacher: whisper-base comes from the registry packages and x is not installed")


def test_nothing_to_build_checks_nothing(tmp_path: Path, caches) -> None:
    raw = profile(test=[{"name": "missing-set", "source": "local", "path": "data/nowhere"}])
    checked = preflight.check(load_params(repository(tmp_path, raw)), [], gpus=[])
    assert checked.findings == () and checked.format() == "preflight: nothing to check"
    only_filter = [stage for stage in STAGES if stage.command == "filter"]
    assert preflight.check(load_params(tmp_path / "params" / "test.yaml"), only_filter, gpus=[]).findings == ()


@pytest.mark.parametrize(
    ("launch", "gpus", "expected"),
    [({}, 0, None), ({}, 1, None), ({}, 8, 8), ({"num_processes": 2}, 0, 2), ({"config_file": "a.yaml"}, 8, 0)],
)
def test_launch_processes_is_the_runners(tmp_path: Path, launch: dict, gpus: int, expected) -> None:
    from kdlib.run import launch_command

    path = repository(tmp_path, {"profile": "t", "run_dir": "r", "reports_dir": "p", "launch": launch})
    params = load_params(path)
    assert preflight.launch_processes(params, gpus) == expected
    command = launch_command(params, STAGES[0], gpus)
    assert (command is None) == (expected is None)
    if expected:
        assert command[command.index("--num_processes") + 1] == str(expected)


def test_clips_in_a_pools_name() -> None:
    assert [sizing.clips_in_name(name) for name in ("100K", "pool-500K", "1M", "1.5M", "default", "K100", "10KB")] == [
        100_000,
        500_000,
        1_000_000,
        1_500_000,
        None,
        None,
        None,
    ]


def test_split_examples_from_a_card() -> None:
    card = {
        "dataset_info": [
            {"config_name": "ar", "splits": [{"name": "test", "num_examples": 10}]},
            {"config_name": "default", "splits": [{"name": "test", "num_examples": 7}]},
        ]
    }
    assert hub.split_examples(card, "ar", "test") == 10
    assert hub.split_examples(card, None, "test") == 7
    assert hub.split_examples(card, None, "train") is None and hub.split_examples({}, None, "test") is None


def test_a_server_error_is_a_problem_for_the_preflight_and_left_to_datasets_at_load_time(
    tmp_path: Path, hub_api: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    audiofolder(tmp_path / "data" / "pool")
    params = load_params(repository(tmp_path, profile(test=[{"name": "busy-set", "source": "hub", "path": BUSY}])))
    (problem,) = preflight.check(params, STAGES, gpus=[]).problems
    assert problem.line.startswith("test set 'busy-set' (hub kdlib-test/busy): the hub answered with an error (")
    assert problem.line.endswith("try again later")
    stand_in = datasets.Dataset.from_dict({"audio": [], "text": []})
    monkeypatch.setattr(data.datasets, "load_dataset", lambda path, *a, **k: stand_in)
    assert data.load_raw(params.data.test[0], params).num_rows == 0  # datasets' own retries handle 429/5xx
