"""The embedded default corpus: shipped Arabic sentences spoken by espeak-ng, built once and cached.

The teacher learns from a share of each variety's sentences (mostly MSA, as Whisper's
pre-training is), the distillation pool holds every sentence spoken in other voices, and
each variety's test set holds a share of its sentences in yet other voices, speeds,
pitches and noise: a small stand-in for the paper's mixture of corpora. Test sentences are
*not* held out from training: a Whisper trained from scratch for minutes on a CPU does not
generalise to unseen sentences (its WER there is ~100%), so the tiny profile measures
recognition of known sentences under new acoustics; the sentences the teacher never
learnt (most dialect ones) play the part of the dialects Whisper handles poorly.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import numpy as np
from tqdm import tqdm

from kdlib import resources
from kdlib.audio import dataset_with_audio, decode, encode_wav
from kdlib.cache import build_once, file_digest, fingerprint, loads_from_disk
from kdlib.config import SyntheticCorpusParams

ESPEAK = "espeak-ng"
TEACHER_SPLIT = "teacher_train"
POOL_SPLIT = "distill_pool"


def test_split(variety: str) -> str:
    return f"test_{variety}"


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One clip to speak: which sentence, in which split, with which voice settings."""

    id: str
    split: str
    variety: str
    text: str
    voice: str
    speed_wpm: int
    pitch: int
    snr_db: float | None
    seed: int


def espeak_version() -> str:
    if shutil.which(ESPEAK) is None:
        raise RuntimeError(
            f"{ESPEAK} is not installed: it speaks the embedded corpus. "
            "Install it with `apt-get install espeak-ng` (the README's set-up does)."
        )
    return subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def plan_utterances(params: SyntheticCorpusParams) -> list[Utterance]:
    """Split the shipped sentences and draw the voice settings of every clip (seeded)."""
    rng = random.Random(params.seed)
    by_variety: dict[str, list[resources.Sentence]] = {}
    for sentence in resources.load_sentences():
        by_variety.setdefault(sentence.variety, []).append(sentence)
    plan: list[Utterance] = []
    for variety in resources.VARIETIES:
        sentences = sorted(by_variety.get(variety, []), key=lambda s: s.id)
        rng.shuffle(sentences)
        if params.max_sentences_per_variety is not None:
            sentences = sentences[: params.max_sentences_per_variety]
        share = params.teacher_msa_fraction if variety == "MSA" else params.teacher_dialect_fraction
        teacher = sentences[: round(len(sentences) * share)]
        test = rng.sample(sentences, max(1, round(len(sentences) * params.test_fraction)))
        for split, chosen, renditions in (
            (test_split(variety), test, params.test_renditions),
            (TEACHER_SPLIT, teacher, params.teacher_renditions),
            (POOL_SPLIT, sentences, params.pool_renditions),
        ):
            for sentence in chosen:
                for rendition in range(renditions):
                    plan.append(_draw(rng, params, sentence, split, rendition))
    return plan


def _draw(rng: random.Random, params: SyntheticCorpusParams, sentence, split: str, rendition: int) -> Utterance:
    noisy = rng.random() < params.noise_fraction
    return Utterance(
        id=f"{sentence.id}-{split}-{rendition}",
        split=split,
        variety=sentence.variety,
        text=sentence.text,
        voice=rng.choice(params.voices),
        speed_wpm=rng.randint(*params.speed_wpm),
        pitch=rng.randint(*params.pitch),
        snr_db=rng.uniform(*params.snr_db) if noisy else None,
        seed=rng.randrange(2**31),
    )


def speak(utterance: Utterance, sampling_rate: int) -> np.ndarray:
    """Render one utterance: espeak-ng, resampling, random silence padding and optional noise."""
    command = [ESPEAK, "-v", utterance.voice, "-s", str(utterance.speed_wpm), "-p", str(utterance.pitch), "--stdout"]
    wav = subprocess.run(command, input=utterance.text.encode("utf-8"), capture_output=True, check=True).stdout
    samples = decode({"bytes": wav}, sampling_rate).samples
    rng = np.random.default_rng(utterance.seed)
    lead, tail = (np.zeros(int(rng.uniform(0.05, 0.4) * sampling_rate), np.float32) for _ in range(2))
    samples = np.concatenate([lead, samples, tail])
    if utterance.snr_db is not None:
        power = float(np.mean(samples**2)) or 1e-8
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (utterance.snr_db / 10)), samples.shape)
        samples = samples + noise.astype(np.float32)
    peak = float(np.abs(samples).max()) or 1.0
    return (samples * (0.9 / peak)).astype(np.float32)


def corpus_key(params: SyntheticCorpusParams, sampling_rate: int) -> str:
    sentences = file_digest(Path(resources.__file__).parent / "sentences.tsv")
    return fingerprint("synthetic-corpus-v1", params, sampling_rate, sentences, espeak_version())


def build_corpus(params: SyntheticCorpusParams, cache_dir: Path, sampling_rate: int = 16_000) -> Path:
    """Speak the corpus into a `datasets.DatasetDict` on disk (cached by its inputs, built once); return its path."""
    target = Path(cache_dir) / "corpus" / corpus_key(params, sampling_rate)

    def save(directory: Path) -> None:
        _speak_corpus(params, sampling_rate).save_to_disk(str(directory))

    return build_once(target, loads_from_disk, save)


def _speak_corpus(params: SyntheticCorpusParams, sampling_rate: int) -> datasets.DatasetDict:
    """Speak every planned utterance into one `datasets.Dataset` per split."""
    plan = plan_utterances(params)
    with ThreadPoolExecutor(max_workers=4) as pool:
        audio = list(
            tqdm(pool.map(lambda u: speak(u, sampling_rate), plan), total=len(plan), desc="speaking the corpus")
        )
    rows: dict[str, dict[str, list]] = {}
    for utterance, samples in zip(plan, audio):
        split = rows.setdefault(utterance.split, {k: [] for k in ("id", "audio", "text", "variety", "voice", "snr_db")})
        split["id"].append(utterance.id)
        split["audio"].append({"bytes": encode_wav(samples, sampling_rate), "path": None})
        split["text"].append(utterance.text)
        split["variety"].append(utterance.variety)
        split["voice"].append(f"{utterance.voice} s{utterance.speed_wpm} p{utterance.pitch}")
        split["snr_db"].append(utterance.snr_db)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=sampling_rate, decode=False),
            "text": datasets.Value("string"),
            "variety": datasets.Value("string"),
            "voice": datasets.Value("string"),
            "snr_db": datasets.Value("float32"),
        }
    )
    return datasets.DatasetDict({name: dataset_with_audio(columns, features) for name, columns in rows.items()})
