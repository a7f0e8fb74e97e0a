"""The model families (Whisper, SeamlessM4T, CTC/MMS): the class chosen from the checkpoint, language codes,
generation and decoding, and stage 04 with baselines beside the teacher — on tiny local checkpoints, offline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kdlib.config import GenerationParams, Params, ParamsError, params_from_dict, params_to_dict
from kdlib.corpus.preparation import load_test_sets
from kdlib.models import families
from kdlib.models import transcription as transcribe_module
from kdlib.models.transcription import generate
from kdlib.stages import evaluate
from tests.test_transcribe import clips_dataset
from tests.tiny_checkpoints import ARABIC, ctc_checkpoint, seamless_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def seamless_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seamless_checkpoint(tmp_path_factory.mktemp("seamless"))


@pytest.fixture(scope="module")
def ctc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ctc_checkpoint(tmp_path_factory.mktemp("mms"))


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Three clips of different lengths, so that a batch pads."""
    generator = np.random.default_rng(0)
    return [(0.1 * generator.standard_normal(n)).astype(np.float32) for n in (24_000, 9_000, 16_000)]


def test_family_is_read_from_the_checkpoint(ci_teacher: str, seamless_dir: Path, ctc_dir: Path, tmp_path: Path) -> None:
    assert [families.model_family(s) for s in (ci_teacher, seamless_dir, ctc_dir)] == ["whisper", "seamless", "ctc"]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model type 'bert' is not supported"):
        families.model_family(tmp_path)


def test_each_checkpoint_gets_its_family_class(ci_teacher: str, seamless_dir: Path, ctc_dir: Path) -> None:
    sources = (ci_teacher, seamless_dir, ctc_dir)
    loaded = [families.load_model(source, CPU, GenerationParams(), name="x") for source in sources]
    assert [type(model) for model in loaded] == [families.WhisperModel, families.SeamlessModel, families.CtcModel]
    assert [model.language for model in loaded] == [None, "arb", "ara"] and {model.name for model in loaded} == {"x"}
    whisper = loaded[0]
    extractor = whisper.processor.feature_extractor
    assert whisper.window_samples == extractor.chunk_length * extractor.sampling_rate > 0
    assert all(model.device == CPU and not model.model.training for model in loaded)
    assert families.MODEL_TYPES["seamless_m4t"] is families.SeamlessModel
    assert families.MODEL_TYPES["wavlm"] is families.CtcModel


class EchoModel(families.SpeechModel):
    """A family unknown to kdlib: each clip's "transcript" is its length in samples, in windows of 1 s."""

    family = "echo"
    language_codes = {"ar": "echo-ar"}

    @classmethod
    def load(cls, source, device, generation=GenerationParams(), name=None, language_codes=None) -> EchoModel:
        processor = SimpleNamespace(feature_extractor=SimpleNamespace(sampling_rate=16_000))
        language = cls.language_code(generation.language, language_codes)
        return cls(name or Path(source).name, str(source), torch.nn.Linear(1, 1), processor, language)

    @property
    def window_samples(self) -> int:
        return 16_000

    def generate(self, clips, generation) -> list[list[int]]:
        return [[len(clip)] for clip in clips]

    def decode(self, token_ids) -> str:
        return "+".join(map(str, token_ids))


def test_a_family_registered_in_the_table_is_loaded_and_run_by_its_own_class(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))  # a type transformers knows, kdlib not
    with pytest.raises(ValueError, match="model type 'bert' is not supported"):
        families.load_model(tmp_path, CPU)
    monkeypatch.setitem(families.MODEL_TYPES, "bert", EchoModel)
    assert families.model_family(tmp_path) == "echo" and families.language_code("echo", "Ar") == "echo-ar"
    loaded = families.load_model(tmp_path, CPU, GenerationParams(), language_codes={"echo": "xx"})
    assert isinstance(loaded, EchoModel) and loaded.name == tmp_path.name and loaded.language == "xx"
    transcripts = transcribe_module.transcribe(loaded, clips_dataset([2.5, 0.5]), GenerationParams(batch_size=2))
    assert [t.text for t in transcripts] == ["16000+16000+8000", "8000"]  # cut into the class's windows and joined
    assert [t.token_ids for t in transcripts] == [(16_000, 16_000, 8_000), (8_000,)]


def test_language_codes() -> None:
    assert families.language_code("whisper", "ar") == "ar"
    assert families.language_code("seamless", "ar") == "arb"
    assert families.language_code("ctc", "Arabic") == "ara"
    assert families.language_code("ctc", "ar", {"ctc": "ary"}) == "ary"
    with pytest.raises(ValueError, match=r"evaluate\.language_codes\.seamless"):
        families.language_code("seamless", "fa")


def test_language_codes_are_checked_in_params(ci_params: Params) -> None:
    raw = params_to_dict(ci_params)
    raw["evaluate"]["language_codes"] = {"seamles": "arb"}
    with pytest.raises(ParamsError, match="language_codes"):
        params_from_dict(raw)


def test_seamless_starts_the_decoder_with_the_target_language(seamless_dir: Path, clips: list[np.ndarray]) -> None:
    settings = GenerationParams(max_new_tokens=6)
    loaded = families.load_model(seamless_dir, CPU, settings)
    assert loaded.language == "arb" and loaded.window_samples is None
    batched = generate(loaded, clips, settings)
    tokenizer = loaded.processor.tokenizer
    arb = tokenizer.convert_tokens_to_ids("__arb__")
    for clip, tokens in zip(clips, batched):
        alone = loaded.processor(audio=[clip], sampling_rate=16_000, return_tensors="pt")
        sequence = loaded.model.generate(**alone, tgt_lang="arb", max_new_tokens=6)[0].tolist()
        assert sequence[1] == arb  # after the decoder-start token
        assert tokens == [t for t in sequence if t not in tokenizer.all_special_ids]  # padding changes nothing
    assert all(isinstance(loaded.decode(tokens), str) for tokens in batched)


def test_ctc_loads_the_language_adapter_and_ignores_padding(ctc_dir: Path, clips: list[np.ndarray]) -> None:
    loaded = families.load_model(ctc_dir, CPU, GenerationParams())
    arabic_vocabulary = json.loads((ctc_dir / "vocab.json").read_text())["ara"]
    assert loaded.model.target_lang == "ara"
    assert loaded.model.lm_head.out_features == len(arabic_vocabulary)
    batched = generate(loaded, clips, GenerationParams())
    for clip, tokens in zip(clips, batched):
        alone = loaded.processor(clip, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            frames = loaded.model(**alone).logits.argmax(-1)[0]
        assert tokens == generate(loaded, [clip], GenerationParams())[0]  # a padded batch = one clip at a time
        reference = loaded.processor.decode(frames)  # transformers' CTC decoding: merge repeats, drop blanks
        for special in ("<s>", "</s>", "<unk>"):
            reference = reference.replace(special, "")
        assert loaded.decode(tokens) == reference.strip()
        assert set(loaded.decode(tokens)) <= set(ARABIC) | {" "}
    assert any(batched), "the random model should emit something"


def test_ctc_without_adapters_is_used_as_it_is(tmp_path: Path, clips: list[np.ndarray]) -> None:
    loaded = families.load_model(ctc_checkpoint(tmp_path, adapters=False), CPU, GenerationParams())
    assert isinstance(loaded, families.CtcModel) and loaded.model.target_lang is None
    texts = [loaded.decode(tokens) for tokens in generate(loaded, clips, GenerationParams())]
    assert any(texts) and all(set(text) <= set(ARABIC) | {" "} for text in texts)


def test_stage_04_evaluates_baselines_beside_the_teacher(
    ci_params: Params, ci_teacher: str, seamless_dir: Path, ctc_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    params = replace(
        ci_params,
        run_dir=str(tmp_path / "runs"),
        evaluate=replace(ci_params.evaluate, baselines=(str(seamless_dir), str(ctc_dir))),
    )
    entries = [evaluate.ModelEntry("teacher", "teacher", ci_teacher)]
    entries += [evaluate.ModelEntry(evaluate.baseline_name(s), "baseline", s) for s in params.evaluate.baselines]
    test_sets = load_test_sets(params)
    predictions = evaluate.predict_all(params, entries, test_sets)
    names = [seamless_dir.name, ctc_dir.name]
    assert list(predictions["model"].unique()) == ["teacher", *names]
    baselines = predictions[predictions["kind"] == "baseline"]
    assert len(baselines) == 2 * len(predictions[predictions["model"] == "teacher"])
    assert baselines["hypothesis"].map(lambda text: isinstance(text, str)).all()
    table = evaluate.main_table(evaluate.scores_table(predictions, params))
    assert list(table.index) == ["teacher", *names] and table.notna().all().all()
    timing = evaluate.efficiency(
        replace(params, evaluate=replace(params.evaluate, latency_clips=2)), entries, test_sets
    )
    assert list(timing["model"]) == ["teacher", *names] and (timing["latency_ms"] > 0).all()


def test_an_unreadable_checkpoint_is_an_error_naming_it(ci_teacher: str, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "teacher"
    shutil.copytree(ci_teacher, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(RuntimeError, match=f"cannot load the model at {broken}"):
        families.load_model(broken, CPU)
