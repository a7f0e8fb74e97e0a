"""The authors' protocol (issue 22, `docs/authors-protocol.md`, `docs/fidelity.md`), each point on a small case:
test-time generation, long test clips, the teacher's ids as targets, the label-length filter, previous-text
prompts, the filter's English normaliser, the global batch, and the KL term with −inf teacher logits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import with_overrides
from tiny_checkpoints import timestamp_whisper_checkpoint

from kdlib.config import (
    GenerationParams,
    LossParams,
    Params,
    ParamsError,
    TeacherArchitecture,
    TrainingParams,
    load_params,
)
from kdlib.corpus.audio import decode
from kdlib.corpus.loader import MappedRows
from kdlib.corpus.preparation import load_mixture, load_test_sets
from kdlib.models.families import WhisperModel, _until_end, load_model
from kdlib.models.runtime import prompt_ids, target_ids
from kdlib.models.students import make_student
from kdlib.models.targets import (
    Specials,
    batch_starts,
    keeps_timestamps,
    previous_text_prompt,
    teacher_label,
    with_prompts,
)
from kdlib.models.training import (
    IGNORE,
    Seq2SeqData,
    accumulation_steps,
    ce_loss,
    kl_loss,
    train,
    training_steps,
)
from kdlib.models.transcription import read_audio_batch, transcribe
from kdlib.pipeline.graph import build, stage_named
from kdlib.scoring.normalizers import apply_view
from kdlib.scoring.normalizers.english import HUB_ONLY_SPELLINGS, spelling_file, spelling_map
from kdlib.stages import evaluate
from kdlib.stages.distill import distill_one, training_targets
from kdlib.stages.filtering import keep_mask, sweep_counts
from kdlib.stages.products import read_pseudo_labels, read_sweep_counts, read_training_ids, read_wer_kept_ids

REPO = Path(__file__).resolve().parents[1]
WHISPER = Specials(start=50258, end=50257, no_timestamps=50363, previous=50361)  # whisper-large-v2's ids

# docs/authors-protocol.md §3, worked example: the teacher's ids as stored, row b after row a in the pool
A = [50258, 50272, 50359, 50364, 3714, 2288, 5016, 3555, 995, 4724, 24793, 50439, 50257, 50257, 50257]
B = [50258, 50272, 50359, 50364, 9122, 33911, 11331, 6027, 4117, 50424, 50424, 45595, 20498, 50464, 50257]
A_TEXT = [3714, 2288, 5016, 3555, 995, 4724, 24793]
A_LABEL = [50258, 50272, 50359, 50363, *A_TEXT, 50257]
B_LABEL = [50258, 50272, 50359, 50363, 9122, 33911, 11331, 6027, 4117, 45595, 20498, 50257]
B_PROMPTED = [50361, *A_TEXT, *B_LABEL]


# ---------------------------------------------------------------------------------------- 8. the KL term


def test_a_minus_inf_teacher_logit_adds_nothing_to_the_kl_as_in_the_authors_kldivloss() -> None:
    teacher = torch.tensor([[[2.0, -float("inf"), 0.5, 1.0]]])
    student = torch.tensor([[[1.0, 0.3, -0.2, 0.7]]])
    mask, temperature = torch.ones(1, 1), 2.0
    ours = kl_loss(student, teacher, mask, temperature)
    authors = (
        torch.nn.KLDivLoss(reduction="none")(
            F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1)
        ).sum()
        * temperature**2
    )
    assert torch.isfinite(ours) and ours.item() == pytest.approx(1.0718, abs=1e-4)
    assert ours.item() == pytest.approx(authors.item(), rel=1e-6)
    leaf = student.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(kl_loss(leaf, teacher, mask, temperature), leaf)
    assert torch.isfinite(gradient).all()
    # finite logits: F.kl_div's value, and bit for bit the former p · (log p − log q) with its gradients
    generator = torch.Generator().manual_seed(0)
    student, teacher = (torch.randn(4, 6, 50, generator=generator) * 3 for _ in range(2))
    mask = torch.ones(4, 6)
    leaf = student.clone().requires_grad_()
    ours = kl_loss(leaf, teacher, mask, temperature)
    student_log = F.log_softmax(leaf / temperature, dim=-1)
    teacher_log = F.log_softmax(teacher / temperature, dim=-1)
    before = (teacher_log.exp() * (teacher_log - student_log)).sum(-1).sum() / mask.sum() * temperature**2
    assert torch.equal(ours, before)
    assert torch.equal(*(torch.autograd.grad(value, leaf)[0] for value in (ours, before)))
    divergence = F.kl_div(student_log, F.softmax(teacher / temperature, dim=-1), reduction="none")
    assert ours.item() == pytest.approx((divergence.sum() / mask.sum() * temperature**2).item(), rel=1e-6)


# ------------------------------------------------------------------------ 3. the teacher's ids as targets


def test_the_teacher_ids_become_the_authors_labels() -> None:
    assert teacher_label(A, keep_timestamps=False, specials=WHISPER) == A_LABEL  # one end, <|notimestamps|> at 3
    assert teacher_label(B, keep_timestamps=False, specials=WHISPER) == B_LABEL
    assert teacher_label(B, keep_timestamps=True, specials=WHISPER) == B  # timestamps kept: as generated
    capped = A[:12]  # cut at the length cap: no end token, one is appended
    assert teacher_label(capped, True, WHISPER) == [*capped, 50257]
    plain = [50258, 50272, 50359, 50363, 5, 6, 50257]  # generated without timestamps: as it is
    assert teacher_label(plain, False, WHISPER) == teacher_label(plain, True, WHISPER) == plain
    assert _until_end([*plain, 50257, 50257], 4, 50257) == plain and _until_end(capped, 3, 50257) == capped


# ------------------------------------------------------------------------------- 5. previous-text prompts


def test_a_prompted_row_gets_the_previous_rows_text_unless_it_would_reach_the_limit() -> None:
    assert previous_text_prompt(A_LABEL, WHISPER) == [50361, *A_TEXT]  # from its label: no timestamp, no special
    labels = [A_LABEL, B_LABEL]  # in one shard (the authors' 4 shards would put them in two)
    assert with_prompts(labels, ["a", "b"], 1.0, 0, 225, WHISPER, shards=1) == [A_LABEL, B_PROMPTED]  # the first: none
    assert with_prompts(labels, ["a", "b"], 1.0, 0, len(B_PROMPTED), WHISPER, shards=1)[1] == B_LABEL  # 20 is not < 20
    assert with_prompts(labels, ["a", "b"], 1.0, 0, len(B_PROMPTED) + 1, WHISPER, shards=1)[1] == B_PROMPTED
    assert with_prompts(labels, ["a", "b"], 0.0, 0, 225, WHISPER, shards=1) == labels
    stamped = with_prompts([A_LABEL, B], ["a", "b"], 1.0, 0, 225, WHISPER, shards=1)[1]
    assert stamped == [50361, *A_TEXT, *B[:-1], 50257]  # the prompt has no timestamp; the label keeps its own


def test_prompts_come_from_within_the_authors_preprocessing_batches() -> None:
    for size, shards, batch in [(10, 4, 2), (23, 4, 5), (7, 3, None), (4, 4, 1000)]:
        rows = datasets.Dataset.from_dict({"row": list(range(size))})
        expected = set()
        for shard in range(shards):
            part = rows.shard(shards, shard, contiguous=True)["row"]
            expected |= set(part[:: batch or max(len(part), 1)])
        assert batch_starts(size, batch, shards) == expected
    ids = [f"clip-{i}" for i in range(3000)]
    labels = [[50258, 50272, 50359, 50363, i, 50257] for i in range(3000)]
    prompted = with_prompts(labels, ids, 0.5, 0, 225, WHISPER, batch_size=1000, shards=4)
    heads = [row for row, label in enumerate(prompted) if label[0] == 50361]
    assert 0.45 < len(heads) / 3000 < 0.55 and not set(heads) & batch_starts(3000, 1000, 4)
    assert all(prompted[row][1] == row - 1 for row in heads)  # the previous row's text


@pytest.fixture(scope="module")
def whisper_processor():
    """Whisper's multilingual tokenizer (large-v2's ids) with a 30 s front end."""
    pytest.importorskip("whisper", reason="openai-whisper (the smoke extra) is not installed")
    from kdlib.models.whisper import multilingual_processor

    return multilingual_processor(TeacherArchitecture(chunk_length_s=30, max_target_positions=448), 16_000)


def silent_clips(count: int, seconds: float = 0.5) -> datasets.Dataset:
    audio = [{"array": np.zeros(int(16_000 * seconds), dtype=np.float32), "sampling_rate": 16_000}] * count
    return datasets.Dataset.from_dict({"id": [f"c{i}" for i in range(count)], "audio": audio})


def test_the_prompt_and_its_start_token_are_left_out_of_the_loss(whisper_processor) -> None:
    lone = [50361, *B_LABEL]  # an empty previous text: the authors' collator keeps <|startoftranscript|> a target
    data = Seq2SeqData(silent_clips(3), None, whisper_processor, "ar", "transcribe", [A_LABEL, B_PROMPTED, lone])
    batch = data.read([0, 1, 2])
    inputs, labels = batch["decoder_input_ids"], batch["labels"]
    assert inputs[1, : len(B_PROMPTED) - 1].tolist() == B_PROMPTED[:-1]  # the decoder reads the prompt
    assert labels[1, : len(B_PROMPTED) - 1].tolist() == [IGNORE] * 8 + B_LABEL[1:]  # the authors' labels
    assert labels[0, : len(A_LABEL) - 1].tolist() == A_LABEL[1:]  # unprompted: all but the first are targets
    assert labels[2, : len(lone) - 1].tolist() == lone[1:]
    # CE and KL ignore what the prompt positions predict
    generator = torch.Generator().manual_seed(0)
    student, teacher = (torch.randn(*labels.shape, 51865, generator=generator) for _ in range(2))
    changed = student.clone()
    changed[1, :8] = torch.randn(8, 51865, generator=generator) * 10
    mask = (labels != IGNORE).float()
    assert ce_loss(changed, labels).item() == pytest.approx(ce_loss(student, labels).item(), rel=1e-6)
    assert kl_loss(changed, teacher, mask, 2.0).item() == pytest.approx(kl_loss(student, teacher, mask, 2.0).item())
    changed[1, 8, 50272] += 10  # the first position after the prompt (<|ar|>) is a target
    assert ce_loss(changed, labels).item() != pytest.approx(ce_loss(student, labels).item(), rel=1e-6)


def test_tokenising_the_text_again_is_not_the_teachers_ids(whisper_processor) -> None:
    """Why the authors' ids matter: the teacher's text starts with a space token, the stripped text does not."""
    prompt = prompt_ids(whisper_processor, "ar", "transcribe")
    text = whisper_processor.tokenizer.decode(A, skip_special_tokens=True).strip()
    assert target_ids(whisper_processor, text, prompt) != A_LABEL and text == "مرحبا بكم"
    data = Seq2SeqData(silent_clips(1), None, whisper_processor, "ar", "transcribe", [A_LABEL])
    assert data.targets == [A_LABEL]


# ------------------------------------------------------------------------------ 4. the label-length filter


def test_the_length_filter_keeps_labels_of_at_most_225_tokens() -> None:
    def capped(stamps: int) -> list[int]:  # 225 ids, no end: a loop with `stamps` timestamp tokens
        body = [50364 + i if i < stamps else 3714 for i in range(222)]
        return [50258, 50272, 50359, *body]

    assert len(teacher_label(capped(1), False, WHISPER)) == 226  # one timestamp out, <|notimestamps|> and end in
    assert len(teacher_label(capped(2), False, WHISPER)) == 225  # two out: room for both
    assert len(teacher_label(capped(2), True, WHISPER)) == 226  # timestamps kept: end appended
    ended = [50258, 50272, 50359, 50364, *[3714] * 219, 50439, 50257]  # 225 with its end: kept either way
    assert len(teacher_label(ended, True, WHISPER)) == 225 and len(teacher_label(ended, False, WHISPER)) == 224


def test_the_length_filter_applies_at_every_lambda_none_included_and_is_counted() -> None:
    frame = pd.DataFrame(
        {
            "teacher_wer": [0.0, 0.5, 0.9, 3.0],
            "variety": ["MSA"] * 4,
            "duration_s": [1.0] * 4,
            "reference_words": [3, 3, 3, 3],
        }
    )
    fits = pd.Series([True, False, True, False])
    counts = sweep_counts(frame, (80.0, None), keep_rule="below", fits=fits).set_index("threshold")
    overall = counts[counts["variety"] == "all"]
    assert overall.loc["80", "kept"] == 1 and overall.loc["80", "dropped_too_long"] == 1
    assert overall.loc["none", "kept"] == 2 and overall.loc["none", "dropped_too_long"] == 2
    assert "dropped_too_long" not in sweep_counts(frame, (80.0, None)).columns  # no filter: the table as before


def test_a_pair_whose_reference_is_empty_in_the_view_is_dropped_at_every_numeric_lambda() -> None:
    wer, words = pd.Series([0.0, 0.0, 0.5]), pd.Series([0, 4, 4])  # an empty reference against an empty label
    assert keep_mask(wer, 80.0, "below", words).tolist() == [False, True, True]
    assert keep_mask(wer, None, "below", words).tolist() == [True, True, True]
    assert keep_mask(wer, 80.0, "below").tolist() == [True, True, True]  # without the counts: as before


# ---------------------------------------------------------------------------- 6. the filter's normaliser


def test_the_english_view_is_transformers_english_normaliser_with_the_hub_spelling_map() -> None:
    pytest.importorskip("whisper", reason="openai-whisper (the smoke extra) is not installed")
    import json

    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    pip_map = json.loads(spelling_file().read_text(encoding="utf-8"))
    assert set(spelling_map()) - set(pip_map) == set(HUB_ONLY_SPELLINGS) == {"mm"} and len(spelling_map()) == 1740
    rows = {  # docs/authors-protocol.md §6
        "مسؤول عن المسائل": "مسوول عن المسايل",
        "لا ﻻ ﻷ ﻵ": "لا لا لا لا",
        "قال [ضحك] (تصفيق) ثم ذهب": "قال ثم ذهب",
        "شاهدت Netflix و YouTube اليوم": "شاهدت netflix و youtube اليوم",
        "كَتَبَ الوَلَدُ الدَّرْسَ": "كتب الولد الدرس",
        "الساعة ٣ و 25% ، هل؟ نعم!": "الساعة 3 و 25% هل نعم",
        "20mm": "20 hmm",
    }
    for text, expected in rows.items():
        assert apply_view(text, "english") == expected == EnglishTextNormalizer(spelling_map())(text)
    assert apply_view("شاهدت Netflix", "authors") == "شاهدت" != apply_view("شاهدت Netflix", "english")


# ------------------------------------------------------------------------------------- 7. the global batch


def test_the_global_batch_sets_accumulation_and_the_authors_step_count() -> None:
    settings = TrainingParams(max_steps=None, epochs=10, batch_size=16, global_batch_size=128)
    assert [accumulation_steps(settings, world) for world in (1, 2, 8)] == [8, 4, 1]
    assert training_steps(settings, 1000, 1) == training_steps(settings, 1000, 8) == 70  # ⌊1000 / 128⌋ × 10
    assert training_steps(settings, 72_000, 1) == 5620  # the authors' 100K pool after filtering, roughly
    assert training_steps(replace(settings, global_batch_size=None), 72_000, 1) == 45_000  # 8× as many before
    with pytest.raises(ValueError, match=r"global_batch_size 128 is not a multiple of batch_size × processes = 16 × 3"):
        accumulation_steps(settings, 3)
    assert accumulation_steps(replace(settings, global_batch_size=None, gradient_accumulation_steps=3), 5) == 3


def test_a_global_batch_that_does_not_divide_is_a_params_error(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params" / "paper.yaml").read_text(encoding="utf-8"))
    raw["distill"]["training"]["global_batch_size"] = 100
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(
        ParamsError, match=r"'distill\.training\.global_batch_size' 100 is not a multiple of batch_size"
    ):
        load_params(path)
    raw["distill"]["training"].update(global_batch_size=128, gradient_accumulation_steps=2)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ParamsError, match=r"gradient_accumulation_steps' follows from global_batch_size"):
        load_params(path)


def test_a_global_batch_trains_as_the_accumulation_it_implies(ci_params: Params, ci_teacher: str, tmp_path) -> None:
    corpus = load_mixture(ci_params.data.teacher_train, ci_params, "train").dataset.select(range(12))
    teacher = load_model(ci_teacher, torch.device("cpu"))
    loss = LossParams(kl_weight=0.8, ce_weight=1.0, temperature=2.0)
    base = dict(max_steps=None, epochs=1, batch_size=2, learning_rate=1e-3, warmup_steps=1, save_every=0)
    runs = {}
    for name, settings in {
        "global": TrainingParams(**base, global_batch_size=4),
        "accumulated": TrainingParams(**base, gradient_accumulation_steps=2),
    }.items():
        data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
        reads = []
        read = data.read
        data.read = lambda rows, read=read, reads=reads: reads.append(rows) or read(rows)  # type: ignore[method-assign]
        student = make_student(teacher.model, "DW-1-1")
        outcome = train(student, teacher.processor, data, settings, tmp_path / name, loss=loss, teacher=teacher.model)
        runs[name] = (outcome, reads, student.state_dict())
    outcome, reads, weights = runs["global"]
    assert outcome.steps == 3 and len(reads) == 6  # ⌊12 / 4⌋ steps of 2 micro-batches of 2
    assert reads == runs["accumulated"][1]
    assert all(torch.equal(weights[key], runs["accumulated"][2][key]) for key in weights)


# ------------------------------------------------------------------------------- 1. test-time generation


def test_a_null_length_is_the_checkpoints_max_length_less_the_prompt(whisper_processor) -> None:
    from kdlib.models.whisper import random_model

    settings = TeacherArchitecture(
        d_model=8, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=16, vocab_size=51865,
        chunk_length_s=30, hop_length=160, max_target_positions=448,
    )  # fmt: skip
    model = random_model(whisper_processor, settings).eval()
    with torch.no_grad():
        model.proj_out.weight.zero_()  # every logit equal: the end token never wins
    loaded = WhisperModel("random", "random", model, whisper_processor)
    assert loaded.max_new_tokens(GenerationParams(max_new_tokens=None)) == 444  # 448 − 4, as the authors had it
    assert loaded.max_new_tokens(GenerationParams(max_new_tokens=None, return_timestamps=True)) == 445
    clip = [np.zeros(16_000, dtype=np.float32)]
    (unbounded,) = loaded.generate(clip, GenerationParams(max_new_tokens=None, dtype="float32"))
    (capped,) = loaded.generate(clip, GenerationParams(max_new_tokens=225, dtype="float32"))
    assert unbounded[:4] == [50258, 50272, 50359, 50363] and len(unbounded) == 448 and 50257 not in unbounded
    assert len(capped) == 4 + 225


def test_batched_greedy_transcripts_equal_one_clip_at_a_time(ci_params: Params, ci_teacher: str) -> None:
    """In float32 on the CPU, each clip's greedy transcript is the same whatever the batch (ci profile)."""
    loaded = load_model(ci_teacher, torch.device("cpu"), GenerationParams(dtype="float32"))
    generation = replace(ci_params.evaluate.generation, max_new_tokens=None, dtype="float32")
    for name, corpus in load_test_sets(ci_params).items():
        single = transcribe(loaded, corpus.dataset, replace(generation, batch_size=1), name)
        batched = transcribe(loaded, corpus.dataset, replace(generation, batch_size=8), name)
        assert [t.token_ids for t in batched] == [t.token_ids for t in single], name


# ------------------------------------------------------------------------------------ 2. long test clips


def test_a_long_test_clip_is_heard_up_to_the_window_and_scored_on_its_whole_reference(
    ci_params: Params, ci_teacher: str
) -> None:
    loaded = load_model(ci_teacher, torch.device("cpu"))
    window = loaded.window_samples
    clips = load_test_sets(ci_params)["MSA"].dataset.select(range(2))
    rate, texts = ci_params.data.sampling_rate, list(clips["text"])
    joined = np.concatenate([decode(audio, rate).samples for audio in clips["audio"]] * 3)
    assert len(joined) > window
    long_set = datasets.Dataset.from_dict(
        {
            "id": ["long", "head"],
            "audio": [{"array": joined, "sampling_rate": rate}, {"array": joined[:window], "sampling_rate": rate}],
            "text": [" ".join(texts * 3)] * 2,
            "variety": ["MSA"] * 2,
            "duration_s": [len(joined) / rate, window / rate],
            "dataset": ["long"] * 2,
        }
    )
    pieces = read_audio_batch(MappedRows(long_set), [0], rate, window, truncate=True).pieces
    assert len(pieces) == 1 and len(pieces[0]) == window
    assert len(read_audio_batch(MappedRows(long_set), [0], rate, window).pieces) > 1  # chunk: every window
    truncating = replace(ci_params, data=replace(ci_params.data, long_clips="truncate"))
    frame = evaluate.predict(
        loaded, {"long": evaluate.PreparedSet("long", "test", long_set, pd.DataFrame())}, truncating
    )
    long, head = frame.iloc[0], frame.iloc[1]
    assert long["hypothesis"] == head["hypothesis"]  # the same as its first window
    assert long["reference"] == " ".join(texts * 3)  # against the whole reference
    counts = evaluate.long_clip_counts(
        truncating, {"long": evaluate.PreparedSet("long", "test", long_set, pd.DataFrame())}
    )
    assert counts.iloc[0]["long_clips"] == 1
    assert counts.iloc[0]["seconds_beyond"] == pytest.approx(len(joined) / rate - ci_params.data.max_duration_s)


# ---------------------------------------------------------- the ci profile through stages 01-03, as the authors


@pytest.fixture(scope="module")
def authors_params(ci_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Params:
    """The ci profile with a timestamp-capable teacher and the paper profile's protocol: timestamps, the english
    view, a label-length limit that bites (the teacher loops), the teacher's ids, prompts, a global batch."""
    teacher = timestamp_whisper_checkpoint(tmp_path_factory.mktemp("authors-teacher") / "teacher")
    raw = yaml.safe_load(ci_yaml.read_text())
    folder = tmp_path_factory.mktemp("authors-run")
    distill = {
        **raw["distill"],
        "runs": [{"student": "DW-1-1", "thresholds": [None]}],
        "targets": "ids",
        "condition_on_prev_probability": 0.5,
        "prompt_batch_size": 4,
        "training": {**raw["distill"]["training"], "batch_size": 2, "global_batch_size": 4},
    }
    return load_params(
        with_overrides(
            ci_yaml,
            folder / "authors.yaml",
            run_dir=str(folder / "runs"),
            teacher={"source": "hub", "model": str(teacher)},
            pseudo_label={
                **raw["pseudo_label"],
                "generation": {**raw["pseudo_label"]["generation"], "return_timestamps": True},
            },
            filter={**raw["filter"], "view": "english", "keep": "below", "max_label_tokens": 26},
            distill=distill,
        )
    )


def test_the_ci_profile_trains_on_the_teachers_ids_filtered_by_length_with_prompts(authors_params: Params) -> None:
    params = authors_params
    build(params, stage_named("01"))
    labels = read_pseudo_labels(params)
    processor = load_model(params.teacher.model, torch.device("cpu")).processor
    tokenizer, specials = processor.tokenizer, Specials.of(processor.tokenizer)
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|ar|>", "<|transcribe|>"])
    for ids, text in zip(labels["teacher_token_ids"], labels["pseudo_label"]):
        assert ids[:3] == prompt and ids[3] > specials.no_timestamps  # a timestamp first, as the authors' had
        assert len(ids) <= 3 + params.pseudo_label.generation.max_new_tokens + 1
        assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text
    # 02: the length filter drops labels over 26 tokens at λ = none too, and says how many
    build(params, stage_named("02"))
    counts = read_sweep_counts(params)
    overall = counts[(counts["variety"] == "all")].set_index("threshold")
    lengths = {
        clip_id: len(teacher_label(ids, keeps_timestamps(clip_id, 0.2, 0), specials))
        for clip_id, ids in zip(labels["id"], labels["teacher_token_ids"])
    }
    assert overall.loc["none", "dropped_too_long"] == sum(length > 26 for length in lengths.values()) > 0
    kept, sources = read_training_ids(params, None), read_wer_kept_ids(params, None)
    assert kept and all(lengths[clip_id] <= 26 for clip_id in kept) and set(kept) < set(sources)
    # 03: the targets are the teacher's labels, some prompted (from the pairs the WER filter kept), none longer
    pairs = labels.select([list(labels["id"]).index(clip_id) for clip_id in sources])
    targets = training_targets(params, pairs, kept, processor, 26)
    unprompted = {clip_id: teacher_label(ids, keeps_timestamps(clip_id, 0.2, 0), specials) for clip_id, ids in
                  zip(pairs["id"], pairs["teacher_token_ids"])}  # fmt: skip
    prompted = [target for target in targets if target[0] == specials.previous]
    assert 0 < len(prompted) < len(targets)
    for clip_id, target in zip(kept, targets):
        assert target[-len(unprompted[clip_id]) :] == unprompted[clip_id] and len(target) < 26 + 1
    result = distill_one(params, "DW-1-1", None)
    assert result.status == "trained" and result.steps == params.distill.training.max_steps


def test_the_findings_count_the_length_filter_and_the_truncated_clips() -> None:
    from kdlib.report import findings

    frame = pd.DataFrame({"teacher_wer": [0.0, 0.5, 0.9], "variety": ["MSA"] * 3, "duration_s": [1.0] * 3})
    counts = sweep_counts(frame, (80.0, None), keep_rule="below", fits=pd.Series([True, False, False]))
    training = pd.DataFrame({"λ": ["80", "none"], "training pairs": [1, 1], "held-out pairs": [0, 0]})
    sentences = findings.filter_sweep(counts, training, "80", 225)
    assert sentences[0] == (
        "The label-length filter (labels of at most 225 tokens, at every λ) drops, of the pairs the WER filter "
        "keeps, 1 at λ = 80 and 2 at λ = none."
    )
    assert not any("label-length" in sentence for sentence in findings.filter_sweep(counts, training, "80"))
    intervals = pd.DataFrame(
        {"model": ["teacher"], "average": ["avg all"], "estimate": [0.3], "low": [0.2], "high": [0.4]}
    )
    long_clips = pd.DataFrame(
        {
            "dataset": ["MGB-2", "MGB-5", "Fleurs"],
            "clips": [100, 50, 10],
            "long_clips": [3, 1, 0],
            "seconds_beyond": [12.5, 4.0, 0.0],
            "handling": ["truncate"] * 3,
        }
    )
    sentences = findings.evaluation(intervals, pd.DataFrame(), 0.95, 3, long_clips)
    assert sentences[1] == (
        "4 test clips (MGB-2 3 and MGB-5 1) are longer than the models' window: the models heard the first window "
        "only (16.5 s of audio unheard), scored against the whole reference (data.long_clips: truncate, as the "
        "authors)."
    )
