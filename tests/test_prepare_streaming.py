"""Streaming preparation: batched and multi-process decoding gives the set one clip at a time would,
shards roll over at their size, and a preparation killed midway leaves nothing half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kdlib.config import DatasetSpec, Params
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import decode, encode_wav

CLIPS = 300  # more than four batches of data.PREPARE_BATCH, so that two processes share the work


def many_clips(folder: Path, count: int = CLIPS) -> Path:
    """An audiofolder of `count` distinct clips (one of them corrupt, one stored at 8 kHz)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(count):
        name = f"clip{i:04d}.wav"
        if i == 5:
            (folder / name).write_bytes(b"RIFF junk")
        else:
            rate = 8_000 if i == 9 else 16_000
            samples = (0.2 * rng.standard_normal(int(rate * rng.uniform(0.2, 1.0)))).astype(np.float32)
            (folder / name).write_bytes(encode_wav(samples, rate))
        rows.append(f"{name},نص رقم {i}\n")
    (folder / "metadata.csv").write_text("file_name,text\n" + "".join(rows), encoding="utf-8")
    return folder


def params_for(ci_params: Params, tmp_path: Path, folder: Path, **data_fields) -> tuple[Params, DatasetSpec]:
    spec = DatasetSpec(name="pool", source="local", path=str(folder), split="train", variety="MSA")
    params = replace(ci_params, cache_dir=str(tmp_path / "cache"), data=replace(ci_params.data, **data_fields))
    return params, spec


def test_two_processes_and_small_shards_prepare_the_set_one_process_does(ci_params: Params, tmp_path: Path) -> None:
    folder = many_clips(tmp_path / "clips")
    one, spec = params_for(ci_params, tmp_path / "one", folder, prepare_workers=1, audio_format="wav")
    two, _ = params_for(ci_params, tmp_path / "two", folder, prepare_workers=2, audio_format="flac", shard_mib=1)
    serial, parallel = data.prepare(spec, one, "train"), data.prepare(spec, two, "train")
    assert len(list(parallel.folder.glob("shard-*.arrow"))) > 1  # 1 MiB shards: the set rolled over
    assert serial.dataset["id"] == parallel.dataset["id"] and len(serial.dataset) == CLIPS - 1
    assert serial.dataset["text"] == parallel.dataset["text"]
    assert serial.skipped.to_dict("records") == parallel.skipped.to_dict("records")
    assert list(serial.skipped["reason"]) == ["corrupt"]
    for row in (0, 8, CLIPS - 2):  # lossless: FLAC and WAV hold the very samples of the source
        a = decode(serial.dataset[row]["audio"]).samples
        b = decode(parallel.dataset[row]["audio"]).samples
        source = decode(str(folder / serial.dataset[row]["id"].split("/", 1)[1])).samples
        assert np.array_equal(a, b) and (row == 8 or np.array_equal(a, source))  # row 8: resampled
    assert parallel.dataset._fingerprint != serial.dataset._fingerprint  # the storage format is in the key
    assert sum(len(c["bytes"]) for c in parallel.dataset["audio"]) < sum(
        len(c["bytes"]) for c in serial.dataset["audio"]
    )


KILL_SCRIPT = """
import sys
from dataclasses import replace
from kdlib.corpus import preparation as data
from kdlib.config import DatasetSpec, load_params
params = load_params(sys.argv[1])
params = replace(params, cache_dir=sys.argv[2], data=replace(params.data, prepare_workers=1, shard_mib=1))
spec = DatasetSpec(name="pool", source="local", path=sys.argv[3], split="train", variety="MSA")
print(len(data.prepare(spec, params, "train").dataset))
"""


def test_a_preparation_killed_midway_leaves_no_entry_and_the_next_run_prepares_it_whole(
    ci_yaml: Path, ci_params: Params, tmp_path: Path
) -> None:
    folder = many_clips(tmp_path / "clips", count=1500)
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", KILL_SCRIPT, str(ci_yaml), str(cache), str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((cache / "prepared").glob("*/shard-00001.arrow")) and time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the preparation ended before it could be killed: {process.communicate()}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    leftovers = [path for path in (cache / "prepared").iterdir() if path.is_dir()]
    assert leftovers and all(path.name.startswith(".") and path.suffix == ".tmp" for path in leftovers), leftovers
    with pytest.raises(FileNotFoundError):  # nothing was published: the entry is not there
        data.read_prepared(leftovers[0].with_name(leftovers[0].name.split(".")[1]))
    params, spec = params_for(ci_params, tmp_path, folder, prepare_workers=1, shard_mib=1)
    corpus = data.prepare(spec, params, "train")
    assert len(corpus.dataset) == 1499 and corpus.dataset["id"][-1] == "pool/clip1499.wav"
    assert [path for path in (cache / "prepared").iterdir() if path.is_dir()] == [corpus.folder]  # the debris went
