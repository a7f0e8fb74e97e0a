"""Bad inputs and concurrent runs: empty sets, shared cache entries, unsafe names, HTML escaping, permissions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from pandas.io.formats.style import Styler

from kdlib.config import DatasetSpec, Params, safe_component
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import AudioError, decode, encode_wav
from kdlib.report import render as report
from kdlib.storage import cache, whole

REPO = Path(__file__).resolve().parents[1]
GOOD = encode_wav(np.full(16_000, 0.1, np.float32))
EMPTY = encode_wav(np.zeros(0, np.float32))


def audiofolder(folder: Path, clips: dict[str, bytes | None]) -> Path:
    """A local set whose metadata.csv lists `clips`; a clip given as None is listed but absent."""
    folder.mkdir(parents=True)
    for name, payload in clips.items():
        if payload is not None:
            (folder / name).write_bytes(payload)
    rows = "".join(f"{name},نص\n" for name in clips)
    (folder / "metadata.csv").write_text("file_name,text\n" + rows, encoding="utf-8")
    return folder


def local(name: str, folder: Path) -> DatasetSpec:
    return DatasetSpec(name=name, source="local", path=str(folder), split="test", variety="MSA")


def with_sets(params: Params, tmp_path: Path, *specs: DatasetSpec) -> Params:
    return replace(params, cache_dir=str(tmp_path / "cache"), data=replace(params.data, test=specs))


EMPTY_SETS = {
    "all clips bad": (
        {"corrupt.wav": b"RIFF\x10\x00\x00\x00WAVEjunk", "silent.wav": EMPTY, "absent.wav": None},
        [("bad/corrupt.wav", "corrupt"), ("bad/silent.wav", "empty"), ("bad/absent.wav", "missing")],
        "'bad': 1 corrupt, 1 empty, 1 missing",
    ),
    "header only": ({}, [], "'bad': no clips"),
}


@pytest.mark.parametrize(("clips", "skips", "message"), EMPTY_SETS.values(), ids=EMPTY_SETS.keys())
def test_an_empty_set_is_prepared_reported_and_refused_for_training(
    ci_params: Params, tmp_path: Path, clips: dict, skips: list, message: str
) -> None:
    bad = local("bad", audiofolder(tmp_path / "bad", clips))
    good = local("good", audiofolder(tmp_path / "good", {"a.wav": GOOD}))
    params = with_sets(ci_params, tmp_path, bad, good)
    for _ in range(2):  # the rerun reads the cached empty set back
        sets = data.load_test_sets(params)
        assert list(sets) == ["bad", "good"] and len(sets["bad"].dataset) == 0 and len(sets["good"].dataset) == 1
        assert list(zip(sets["bad"].skipped["id"], sets["bad"].skipped["reason"])) == skips
    (entry,) = [path for path in (tmp_path / "cache" / "prepared").glob("bad-*") if path.is_dir()]
    assert data.read_prepared(entry).dataset.features == data.features(params.data.sampling_rate)
    with pytest.raises(ValueError) as caught:
        data.load_mixture((bad,), params, "train")
    assert str(caught.value) == f"the train datasets hold no usable clip after screening ({message})"
    assert len(data.load_mixture((bad, good), params, "train").dataset) == 1


def test_a_missing_clip_is_reported_with_its_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as caught:
        decode({"bytes": None, "path": str(tmp_path / "gone.wav")})
    assert (caught.value.reason, caught.value.detail) == ("missing", f"no audio file {tmp_path / 'gone.wav'}")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("file_name,text\na.wav,\xe9t\xe9\n".encode("latin-1"), r"csv must be UTF-8 text \(invalid continuation byte"),
        (b"", r"csv is empty \(it needs a 'file_name' header\)$"),
        ("name,text\na.wav,نص\n".encode(), r"csv has no 'file_name' column$"),
    ],
    ids=["latin-1", "empty file", "no file_name"],
)
def test_a_bad_metadata_file_is_one_clear_error(
    ci_params: Params, tmp_path: Path, metadata: bytes, message: str
) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "metadata.csv").write_bytes(metadata)
    with pytest.raises(ValueError, match=message) as caught:
        data.prepare(local("odd", folder), with_sets(ci_params, tmp_path), "test")
    assert str(caught.value).startswith(f"dataset 'odd': {folder / 'metadata.csv'} ")
    assert not (tmp_path / "cache" / "prepared").exists()


UNSAFE_NAMES = {
    "../../x": "it holds a path separator",
    "a/b": "it holds a path separator",
    "a\\b": "it holds a path separator",
    "..": "it holds '..'",
    "a..b": "it holds '..'",
    ".hidden": "it starts with a dot",
    "a\x00b": "it holds a NUL or control character",
    "a\nb": "it holds a NUL or control character",
    "": "it is empty",
}


@pytest.mark.parametrize(("name", "problem"), UNSAFE_NAMES.items(), ids=[repr(n) for n in UNSAFE_NAMES])
def test_unsafe_dataset_names_are_rejected(ci_params: Params, tmp_path: Path, name: str, problem: str) -> None:
    expected = f"dataset {name!r}: not usable as a folder name ({problem})"
    with pytest.raises(ValueError) as caught:
        safe_component(name)
    assert str(caught.value) == expected
    params = with_sets(ci_params, tmp_path / "deep" / "er")
    with pytest.raises(ValueError) as caught:
        data.prepare(local(name, audiofolder(tmp_path / "set", {"a.wav": GOOD})), params, "test")
    assert str(caught.value) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # nothing written, inside the cache or out


@pytest.mark.parametrize("name", ["CV-15_ar.test", "اختبار الجزائر", "x.y"])
def test_safe_dataset_names_pass(name: str) -> None:
    assert safe_component(name) == name


def test_builds_are_published_only_when_complete(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    broken = datasets.Dataset.from_dict({"x": []})
    broken.save_to_disk(str(entry))  # the old empty save: no shard, does not load back
    assert not whole.loads_from_disk(entry)
    with pytest.raises(RuntimeError, match="does not load back; not published"):
        cache.build_once(entry, whole.loads_from_disk, lambda directory: (directory / "half").write_text(""))
    assert sorted(p.name for p in entry.iterdir()) == sorted(["dataset_info.json", "state.json"])
    with pytest.raises(KeyError):
        cache.build_once(entry, whole.loads_from_disk, lambda directory: {}["build fails"])
    cache.build_once(entry, whole.loads_from_disk, datasets.Dataset.from_dict({"x": [1]}).save_to_disk)
    assert datasets.load_from_disk(str(entry))["x"] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "entry.lock"]  # no temporary left


BUILDER = """
import sys, time
from pathlib import Path
from kdlib.storage.cache import build_once
entry, log, release = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
def build(directory):
    with open(log, "a") as handle:
        handle.write("build\\n")
    while not release.exists():
        time.sleep(0.01)
    (directory / "done").write_text(sys.argv[4])
print((build_once(entry, lambda path: (path / "done").exists(), build) / "done").read_text())
"""

WRITER = """
import sys
from pathlib import Path
from kdlib.storage.cache import atomic_directory
for _ in range(40):
    with atomic_directory(sys.argv[1]) as directory:
        for number in range(100):
            (directory / f"{number}.txt").write_text(sys.argv[2])
        (directory / "dataset_info.json").write_text("{}")
"""

READER = """
import os, sys
misses = 0
while not os.path.exists(sys.argv[2]):
    misses += not os.path.exists(os.path.join(sys.argv[1], "dataset_info.json"))
print(misses)
"""


def python(script: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_build_an_entry_once(tmp_path: Path) -> None:
    entry, log, release = tmp_path / "entry", tmp_path / "builds.log", tmp_path / "release"
    first = python(BUILDER, entry, log, release, "first")
    while not log.exists():  # the first holds the lock and builds until released
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    second = python(BUILDER, entry, log, release, "second")
    try:
        assert second.stderr.readline() == f"waiting for {entry} (another run is building it)\n"
    finally:
        release.touch()
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert outputs == [("first\n", ""), ("first\n", "")] and log.read_text() == "build\n"


def test_a_replaced_entry_never_disappears_for_readers(tmp_path: Path) -> None:
    entry, stop = tmp_path / "entry", tmp_path / "stop"
    with cache.atomic_directory(entry) as directory:
        (directory / "dataset_info.json").write_text("{}")
    reader = python(READER, entry, stop)
    writers = [python(WRITER, entry, label) for label in ("a", "b")]
    results = [writer.communicate(timeout=120) for writer in writers]
    stop.touch()
    misses, _ = reader.communicate(timeout=60)
    assert [writer.returncode for writer in writers] == [0, 0], results
    assert misses == "0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "stop"]
    assert len({p.read_text() for p in entry.glob("*.txt")}) == 1  # one writer's whole folder


def test_replacing_without_renameat2_moves_the_old_entry_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_LIBC", object())  # e.g. macOS: no renameat2
    entry = tmp_path / "entry"
    for text in ("old", "new"):
        with cache.atomic_directory(entry) as directory:
            (directory / "value").write_text(text)
    assert (entry / "value").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["entry"]


@pytest.fixture(params=[(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)], ids=["022", "002", "077"])
def umask(request: pytest.FixtureRequest):
    """Run a test under a umask (restored afterwards); yields the folder mode it implies."""
    mask, mode = request.param
    previous = os.umask(mask)
    yield mode
    os.umask(previous)


def test_published_folders_follow_the_umask(tmp_path: Path, umask: int) -> None:
    entry = tmp_path / "cache" / "entry"
    cache.build_once(entry, lambda path: (path / "file").exists(), lambda d: cache.atomic_write_text(d / "file", "x"))
    assert oct(entry.stat().st_mode & 0o777) == oct(umask)
    assert oct((entry / "file").stat().st_mode & 0o777) == oct(umask & 0o666)


def test_style_table_escapes_every_string() -> None:
    attack = '"><img src=x onmouseover=alert(1)>'
    frame = pd.DataFrame(
        {"wer": [0.25, 0.5], "<script>alert(1)</script>": ["<script>alert(1)</script>", attack]},
        index=pd.Index(["<script>alert(2)</script>", attack], name="<script>dataset</script>"),
    ).rename_axis(columns="<script>metric</script>")
    html = report.style_table(frame, ["wer"]).to_html()
    assert "<script" not in html.lower() and "<img" not in html and "onmouseover=alert(1)>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2 and "&lt;script&gt;alert(2)" in html


def test_style_table_renders_plain_tables_as_before() -> None:
    frame = pd.DataFrame({"wer": [0.25, 0.5], "cer": [0.1, 0.2]}, index=pd.Index(["MSA", "ALG"], name="variety"))
    plain = Styler(frame, cell_ids=False)  # stable pages: no per-cell ids (see report.stable_style)
    before = plain.format(precision=2).background_gradient(  # one sequential scale over the table, not red-green
        cmap="Blues", subset=["wer", "cer"], axis=None, low=0.1, high=0.6
    )
    after = report.style_table(frame, ["wer", "cer"])
    assert after.set_uuid("t").to_html() == before.set_uuid("t").to_html()


def test_an_unreadable_cached_teacher_is_named_and_made_again(ci_yaml: Path, tmp_path: Path, capsys) -> None:
    from conftest import with_overrides

    from kdlib.config import load_params
    from kdlib.models.teacher import find_teacher

    params = load_params(with_overrides(ci_yaml, tmp_path / "teacher.yaml", cache_dir=str(tmp_path / "cache")))
    teacher = Path(find_teacher(params))
    whole = (teacher / "model.safetensors").read_bytes()
    (teacher / "model.safetensors").write_bytes(whole[:64])
    assert Path(find_teacher(params)) == teacher
    assert f"the cached teacher {teacher / 'model.safetensors'} is unreadable" in capsys.readouterr().err
    assert (teacher / "model.safetensors").read_bytes() == whole  # deterministic training: the same teacher again
