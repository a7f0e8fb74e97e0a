"""Every hub source of the paper profile, read through kdlib's own loading code from a local stand-in laid
out as the hub repository is (its files, folders, column names and types); only the hub id is swapped for
the stand-in's folder, so `datasets` infers splits and configurations exactly as it would on the hub.

The layouts: the authors' pools as their pseudo-labelling command reads them (`audio`, `text`, `id`, split
`train`); Common Voice 15 and FLEURS as the hub's parquet export holds them (`refs/convert/parquet`, one folder
per configuration, the columns of their loading scripts); the released MGB-2/3/5 evaluation copies with
`audio` and `transcription` (the default text column of the authors' evaluation script: their cards could
not be read here, see the README). params/paper-public.yaml names the same hub sets (its Common Voice is a local
folder), so they are covered here too.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
from conftest import REPO

from kdlib.config import DatasetSpec, ParamsError, load_params, params_from_dict, params_to_dict
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import dataset_with_audio, decode
from kdlib.storage.hub import HubState

PAPER = REPO / "params" / "paper.yaml"
AUDIO = datasets.Audio(decode=False)
TEXT = ["السلام عليكم", "مع السلامة", "كيف حالك"]


def clip(rate: int = 48_000) -> dict:
    samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC")
    return {"bytes": buffer.getvalue(), "path": None}


def write_parquet(path: Path, columns: dict[str, list], features: dict[str, datasets.features.FeatureType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset_with_audio(columns, datasets.Features(features)).to_parquet(str(path))  # no audio codec needed


def pool_repo(root: Path) -> None:
    """A released mixture as `push_to_hub` lays it out: `data/<split>-NNNNN-of-NNNNN.parquet`."""
    for split in ("train", "test"):
        columns = {"audio": [clip()] * 3, "text": TEXT, "id": [f"{split}-{i}" for i in range(3)]}
        features = {"audio": AUDIO, "text": datasets.Value("string"), "id": datasets.Value("string")}
        write_parquet(root / "data" / f"{split}-00000-of-00001.parquet", columns, features)


def common_voice_export(root: Path) -> None:
    """Common Voice's parquet export: `<locale>/<split>/NNNN.parquet` with its script's columns."""
    strings = ("client_id", "path", "sentence", "age", "gender", "accent", "locale", "segment", "variant")
    features = {name: datasets.Value("string") for name in strings}
    features.update(audio=AUDIO, up_votes=datasets.Value("int64"), down_votes=datasets.Value("int64"))
    for locale in ("ar", "en"):
        for split in ("train", "test"):
            columns = {name: [""] * 3 for name in strings}
            columns.update(
                client_id=["c1", "c2", "c3"],
                path=[f"common_voice_{locale}_{split}_{i}.mp3" for i in range(3)],
                sentence=TEXT if locale == "ar" else ["hello", "good bye", "how are you"],
                locale=[locale] * 3,
                audio=[clip()] * 3,
                up_votes=[2] * 3,
                down_votes=[0] * 3,
            )
            write_parquet(root / locale / split / "0000.parquet", columns, features)


def fleurs_export(root: Path) -> None:
    """FLEURS' parquet export: `<config>/fleurs-<split>.parquet` with its script's columns (ids repeat: one
    sentence read by several speakers)."""
    features = {
        "id": datasets.Value("int32"),
        "num_samples": datasets.Value("int32"),
        "path": datasets.Value("string"),
        "audio": AUDIO,
        "transcription": datasets.Value("string"),
        "raw_transcription": datasets.Value("string"),
        "gender": datasets.ClassLabel(names=["male", "female", "other"]),
        "lang_id": datasets.ClassLabel(names=["ar_eg", "en_us"]),
        "language": datasets.Value("string"),
        "lang_group_id": datasets.ClassLabel(names=["western_european_we", "middle_eastern_me"]),
    }
    for config in ("ar_eg", "en_us"):
        for split in ("train", "test"):
            columns = {
                "id": [7, 7, 9],
                "num_samples": [48_000] * 3,
                "path": ["a.wav", "b.wav", "c.wav"],
                "audio": [clip(16_000)] * 3,
                "transcription": TEXT if config == "ar_eg" else ["a", "b", "c"],
                "raw_transcription": [text + "." for text in TEXT],
                "gender": [0, 1, 0],
                "lang_id": [0 if config == "ar_eg" else 1] * 3,
                "language": ["Arabic"] * 3,
                "lang_group_id": [1] * 3,
            }
            write_parquet(root / config / f"fleurs-{split}.parquet", columns, features)


def evaluation_copy(root: Path) -> None:
    """A released MGB evaluation copy: `data/<split>-NNNNN-of-NNNNN.parquet` with audio and transcription."""
    for split in ("validation", "test"):
        columns = {"audio": [clip(16_000)] * 3, "transcription": TEXT}
        features = {"audio": AUDIO, "transcription": datasets.Value("string")}
        write_parquet(root / "data" / f"{split}-00000-of-00001.parquet", columns, features)


# hub id and revision → how its stand-in is laid out
LAYOUTS = {
    ("UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_100K", None): pool_repo,
    ("UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_500K", None): pool_repo,
    ("UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_1M", None): pool_repo,
    ("mozilla-foundation/common_voice_15_0", "refs/convert/parquet"): common_voice_export,
    ("google/fleurs", "refs/convert/parquet"): fleurs_export,
    ("UBC-NLP/MGB2-Eval", None): evaluation_copy,
    ("UBC-NLP/MGB3", None): evaluation_copy,
    ("UBC-NLP/MGB5", None): evaluation_copy,
}


def paper_hub_sets() -> list[tuple[str, DatasetSpec]]:
    params = load_params(PAPER)
    pools = [
        ("train", spec) for name in [params.data.default_pool, *params.data.pools] for spec in params.data.pool(name)
    ]
    return [
        (purpose, spec) for purpose, spec in [*pools, *(("test", s) for s in params.data.test)] if spec.source == "hub"
    ]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """`datasets.load_dataset` of a hub id reads that repository's stand-in instead; the calls are recorded."""
    real = datasets.load_dataset
    calls: list[tuple] = []

    def from_stand_in(path, name=None, *, revision=None, data_dir=None, **kwargs):
        calls.append((path, name, revision, data_dir))
        root = tmp_path / "hub" / path / (revision or "main").replace("/", "_")
        if not root.exists():
            LAYOUTS[path, revision](root)
        return real(str(root), name, data_dir=data_dir, **kwargs)

    monkeypatch.setattr(data.datasets, "load_dataset", from_stand_in)
    # the one probe before loading (tests/test_preflight.py tests it): the stand-in's hub answers "reachable"
    monkeypatch.setattr(
        data.hub, "probe", lambda path, kind, revision=None, **_: HubState(path, kind, "reachable", False)
    )
    return calls


def test_every_hub_source_of_the_paper_profile_has_a_stand_in() -> None:
    assert {(spec.path, spec.revision) for _, spec in paper_hub_sets()} == set(LAYOUTS)


@pytest.mark.parametrize(("purpose", "spec"), paper_hub_sets(), ids=lambda value: getattr(value, "name", value))
def test_each_hub_source_maps_its_columns(ci_params, tmp_path: Path, hub: list[tuple], purpose, spec) -> None:
    params = replace(ci_params, cache_dir=str(tmp_path / "cache"), data=replace(ci_params.data, max_duration_s=30.0))
    corpus = data.prepare(spec, params, purpose)
    assert hub == [(spec.path, spec.config, spec.revision, spec.data_dir)]
    assert corpus.dataset["text"] == TEXT  # the Arabic configuration's reference column, not another's
    assert set(corpus.dataset["variety"]) == {spec.variety or "unknown"}
    assert all(clip_id.startswith(f"{spec.name}/") for clip_id in corpus.dataset["id"])
    assert decode(corpus.dataset[0]["audio"]).original_rate == 16_000
    ids = corpus.dataset["id"]
    if spec.path == "mozilla-foundation/common_voice_15_0":
        assert ids == [f"CV-15.0/common_voice_ar_test_{i}.mp3" for i in range(3)]  # the clip's file names the clip
    if spec.path == "google/fleurs":
        assert ids == ["Fleurs/7", "Fleurs/7#2", "Fleurs/9"]  # one sentence, two speakers: two clips
    if spec.path.startswith("UBC-NLP/masc"):
        assert ids == [f"{spec.name}/train-{i}" for i in range(3)] and purpose == "train"


def test_a_parquet_export_is_read_by_its_folder_not_a_configuration() -> None:
    raw = params_to_dict(load_params(PAPER))
    fleurs = next(spec for spec in raw["data"]["test"] if spec["name"] == "Fleurs")
    fleurs.update(config="ar_eg", data_dir=None)
    with pytest.raises(ParamsError, match=r"'data.test\[4\].config'.*data_dir: ar_eg"):
        params_from_dict(raw)


def test_the_public_profile_reads_the_same_hub_sets() -> None:
    """params/paper-public.yaml: the paper's hub sets, so each is covered above; its Common Voice is a local folder."""
    public = load_params(REPO / "params" / "paper-public.yaml")
    pools = [spec for name in [public.data.default_pool, *public.data.pools] for spec in public.data.pool(name)]
    hub_sets = {(spec.path, spec.revision) for spec in [*pools, *public.data.test] if spec.source == "hub"}
    assert hub_sets <= set(LAYOUTS)
    (cv,) = [spec for spec in public.data.test if spec.name == "CV-15.0"]
    assert (cv.source, cv.text_column, cv.id_column) == ("local", "sentence", "path")
