"""The embedded default corpus: Arabic sentences spoken by espeak-ng, one cached set per split.

With `language: en` (`SyntheticCorpusParams`), the same machinery speaks the shipped held-out English sentences
(`kdlib/corpus/resources/sentences_en.tsv`, one variety, EN; no templates, no MSA subtitles) with English voices
(`voices: [en-us]`): real Whisper checkpoints read espeak-ng's English, not its Arabic, so this is the language
in which a real Whisper's pipeline is checked (`params/real-base.yaml`).

A simulated world in which the paper's phenomena can arise, each by a mechanism whose share is
a param (`SyntheticCorpusParams`), never by editing outputs:

- **Held-out sentences.** The shipped hand-written sentences and templated ones
  (`kdlib.corpus.grammar`) are dealt out per variety to the test sets, the distillation pool and the
  teacher's training, so no test sentence is heard by the teacher or present in the pool.
- **MSA subtitles.** As web captions pair dialect speech with MSA subtitles, a share of the
  teacher's dialect clips carries the MSA rendering of what is said: the teacher learns to
  write MSA for dialect speech (*dialectal* errors).
- **Non-speech.** Noise clips captioned empty teach the teacher to write nothing for noise, so
  it may write nothing for speech drowned in noise (*empty*). The tests hold noise and tones
  (which the teacher never heard) with empty references (*hallucination*); the pool holds them
  with stray captions, as misaligned web captions do.
- **Long, cut and fast clips** in the pool and the tests: two sentences joined (longer than any
  clip the teacher heard: loops, early stops), audio cut short while the reference stays whole,
  speech faster than any the teacher heard (*incomplete*).
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

from kdlib.config import SyntheticCorpusParams
from kdlib.corpus import grammar as grammar_module
from kdlib.corpus import resources
from kdlib.corpus.audio import dataset_with_audio, decode, encode_wav
from kdlib.corpus.grammar import distinct_meanings, grammar_path, read_grammar
from kdlib.storage.cache import build_once, file_digest, fingerprint
from kdlib.storage.progress import progress
from kdlib.storage.whole import loads_from_disk

ESPEAK = "espeak-ng"
TEACHER_SPLIT = "teacher_train"
POOL_SPLIT = "distill_pool"
NONSPEECH_KINDS = ("noise", "tones")
PAUSE_S = (0.2, 0.5)  # between the two sentences of a long clip


def test_split(variety: str) -> str:
    return f"test_{variety}"


def varieties(language: str = "ar") -> tuple[str, ...]:
    """The varieties spoken in `language`: MSA and the five dialects, or EN."""
    return resources.LANGUAGE_VARIETIES[language]


def split_names(language: str = "ar") -> tuple[str, ...]:
    """Every split the corpus has in `language`."""
    return (TEACHER_SPLIT, POOL_SPLIT, *(test_split(variety) for variety in varieties(language)))


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A sentence of one variety, and its MSA rendering when it has one (templated sentences do)."""

    id: str
    variety: str
    text: str
    msa: str | None


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One clip to make: what is said (nothing for non-speech), its reference, and how it sounds."""

    id: str
    split: str
    variety: str
    text: str  # the reference: what the caption says
    spoken: tuple[str, ...]  # sentences said one after the other; () for non-speech
    nonspeech: str | None  # one of NONSPEECH_KINDS for a clip without speech
    phenomenon: str  # plain, msa_subtitle, long, cut, fast or nonspeech
    voice: str
    speed_wpm: int
    pitch: int
    snr_db: float | None
    cut_keep: float | None  # the share of the speech kept (a cut clip)
    seed: int


def espeak_version() -> str:
    if shutil.which(ESPEAK) is None:
        raise RuntimeError(
            f"{ESPEAK} is not installed: it speaks the embedded corpus. "
            "Install it with `apt-get install espeak-ng` (the README's set-up does)."
        )
    return subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def deal_sentences(params: SyntheticCorpusParams) -> dict[str, dict[str, list[Sentence]]]:
    """Each variety's test, pool and teacher sentences (`{variety: {"test"|"pool"|"teacher": [...]}}`):
    hand-written and templated sentences shuffled together and dealt out, disjoint (seeded)."""
    rng = random.Random(params.seed)
    spoken = varieties(params.language)
    wanted = {
        variety: params.test_sentences
        + params.pool_sentences
        + (params.teacher_sentences if variety in ("MSA", resources.ENGLISH) else params.teacher_dialect_sentences)
        for variety in spoken
    }
    written: dict[str, list[Sentence]] = {variety: [] for variety in spoken}
    for sentence in resources.load_sentences(language=params.language):
        msa = sentence.text if sentence.variety == "MSA" else None
        written[sentence.variety].append(Sentence(sentence.id, sentence.variety, sentence.text, msa))
    missing = {variety: max(0, wanted[variety] - len(written[variety])) for variety in spoken}
    if params.language != "ar" and any(missing.values()):  # templates are Arabic only
        variety = next(v for v in spoken if missing[v])
        raise ValueError(
            f"data.synthetic: language {params.language!r} has {len(written[variety])} shipped sentences and "
            f"test_sentences + pool_sentences + teacher_sentences ask for {wanted[variety]}"
        )
    grammar = read_grammar()
    meanings = iter(distinct_meanings(grammar, sum(missing.values()), params.seed))
    dealt = {}
    for variety in spoken:
        templated = []
        for index in range(missing[variety]):
            meaning = next(meanings)
            text, msa = meaning.render(grammar, variety), meaning.render(grammar, "MSA")
            templated.append(Sentence(f"{variety.lower()}-t{index:05d}", variety, text, msa))
        sentences = sorted(written[variety], key=lambda s: s.id) + templated
        rng.shuffle(sentences)
        sentences = sentences[: wanted[variety]]
        test, pool = params.test_sentences, params.test_sentences + params.pool_sentences
        dealt[variety] = {"test": sentences[:test], "pool": sentences[test:pool], "teacher": sentences[pool:]}
    return dealt


def plan_utterances(params: SyntheticCorpusParams) -> list[Utterance]:
    """Every clip of every split, with its phenomenon and voice settings drawn (seeded)."""
    rng = random.Random(params.seed)
    dealt = deal_sentences(params)
    plan: list[Utterance] = []
    teacher: list[Utterance] = []
    pool: list[Utterance] = []
    for variety in varieties(params.language):
        for sentence in dealt[variety]["teacher"]:
            for rendition in range(params.teacher_renditions):
                subtitled = variety != "MSA" and sentence.msa and rng.random() < params.msa_subtitle_fraction
                text = sentence.msa if subtitled else sentence.text
                teacher.append(
                    _draw(
                        rng,
                        params,
                        f"{sentence.id}-{TEACHER_SPLIT}-{rendition}",
                        TEACHER_SPLIT,
                        variety,
                        text,
                        (sentence.text,),
                        "msa_subtitle" if subtitled else "plain",
                        params.speed_wpm,
                    )
                )
        pool += _with_phenomena(rng, params, dealt[variety]["pool"], POOL_SPLIT, params.pool_renditions)
        tests = _with_phenomena(rng, params, dealt[variety]["test"], test_split(variety), params.test_renditions)
        plan += tests + _nonspeech(rng, params, test_split(variety), variety, len(tests), captions=None)
    captions = [utterance.text for utterance in pool]
    main = varieties(params.language)[0]  # MSA, or EN
    plan += teacher + _nonspeech(rng, params, TEACHER_SPLIT, main, len(teacher), captions=None, kinds=("noise",))
    plan += pool + _nonspeech(rng, params, POOL_SPLIT, main, len(pool), captions=captions)
    return plan


def _with_phenomena(
    rng: random.Random, params: SyntheticCorpusParams, sentences: list[Sentence], split: str, renditions: int
) -> list[Utterance]:
    """Clips of `sentences`, each plain or (exclusively) long, cut or fast, by the params' shares."""
    clips = []
    for sentence in sentences:
        for rendition in range(renditions):
            draw = rng.random()
            clip_id = f"{sentence.id}-{split}-{rendition}"
            speeds, spoken, kind, cut = params.speed_wpm, (sentence.text,), "plain", None
            if draw < params.long_fraction and len(sentences) > 1:
                other = rng.choice([s for s in sentences if s.id != sentence.id])
                spoken, kind, clip_id = (
                    (sentence.text, other.text),
                    "long",
                    f"{sentence.id}+{other.id}-{split}-{rendition}",
                )
            elif draw < params.long_fraction + params.cut_fraction:
                kind, cut = "cut", rng.uniform(*params.cut_keep)
            elif draw < params.long_fraction + params.cut_fraction + params.fast_fraction:
                kind, speeds = "fast", params.fast_speed_wpm
            clips.append(
                _draw(rng, params, clip_id, split, sentence.variety, " ".join(spoken), spoken, kind, speeds, cut)
            )
    return clips


def _nonspeech(
    rng: random.Random,
    params: SyntheticCorpusParams,
    split: str,
    variety: str,
    clips: int,
    captions: list[str] | None,
    kinds: tuple[str, ...] = NONSPEECH_KINDS,
) -> list[Utterance]:
    """`nonspeech_fraction` × `clips` clips without speech, captioned empty or with a stray caption."""
    count = round(params.nonspeech_fraction * clips)
    return [
        dataclasses.replace(
            _draw(
                rng,
                params,
                f"nonspeech-{split}-{index}",
                split,
                variety,
                rng.choice(captions) if captions else "",
                (),
                "nonspeech",
                params.speed_wpm,
            ),
            nonspeech=kinds[index % len(kinds)],
            snr_db=None,
        )
        for index in range(count)
    ]


def _draw(
    rng: random.Random,
    params: SyntheticCorpusParams,
    clip_id: str,
    split: str,
    variety: str,
    text: str,
    spoken: tuple[str, ...],
    phenomenon: str,
    speeds: tuple[int, int],
    cut_keep: float | None = None,
) -> Utterance:
    noisy = rng.random() < params.noise_fraction
    snr = params.teacher_snr_db if split == TEACHER_SPLIT else params.snr_db
    return Utterance(
        id=clip_id,
        split=split,
        variety=variety,
        text=text,
        spoken=spoken,
        nonspeech=None,
        phenomenon=phenomenon,
        voice=rng.choice(params.voices),
        speed_wpm=rng.randint(*speeds),
        pitch=rng.randint(*params.pitch),
        snr_db=rng.uniform(*snr) if noisy else None,
        cut_keep=cut_keep,
        seed=rng.randrange(2**31),
    )


def _espeak(text: str, utterance: Utterance, sampling_rate: int) -> np.ndarray:
    command = [ESPEAK, "-v", utterance.voice, "-s", str(utterance.speed_wpm), "-p", str(utterance.pitch), "--stdout"]
    wav = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=True).stdout
    return decode({"bytes": wav}, sampling_rate).samples


def _nonspeech_audio(kind: str, rng: np.random.Generator, sampling_rate: int) -> np.ndarray:
    """Seconds of noise (coloured, swelling) or of tones (a melody of chords): no speech in either."""
    length = int(rng.uniform(1.0, 4.0) * sampling_rate)
    if kind == "noise":
        noise = np.cumsum(rng.normal(0.0, 1.0, length)) * rng.uniform(0.0, 0.05) + rng.normal(0.0, 1.0, length)
        envelope = 0.5 + 0.5 * np.sin(np.linspace(0, rng.uniform(1, 12), length) + rng.uniform(0, 6.3))
        return (noise - noise.mean()) * envelope
    times = np.arange(length) / sampling_rate
    audio = np.zeros(length)
    start = 0
    while start < length:  # one chord per note, 0.15-0.6 s each
        end = min(length, start + int(rng.uniform(0.15, 0.6) * sampling_rate))
        for frequency in rng.uniform(150, 1800, rng.integers(1, 4)):
            audio[start:end] += np.sin(2 * np.pi * frequency * times[start:end])
        start = end
    return audio + rng.normal(0.0, 0.05, length)


def speak(utterance: Utterance, sampling_rate: int) -> np.ndarray:
    """Render one utterance: its sentences spoken (or non-speech), cut, padded with silence, noised."""
    rng = np.random.default_rng(utterance.seed)
    if utterance.nonspeech is not None:
        samples = _nonspeech_audio(utterance.nonspeech, rng, sampling_rate).astype(np.float32)
    else:
        parts = []
        for index, text in enumerate(utterance.spoken):
            if index:
                parts.append(np.zeros(int(rng.uniform(*PAUSE_S) * sampling_rate), np.float32))
            parts.append(_espeak(text, utterance, sampling_rate))
        samples = np.concatenate(parts)
        if utterance.cut_keep is not None:
            samples = samples[: max(1, int(len(samples) * utterance.cut_keep))]
    lead, tail = (np.zeros(int(rng.uniform(0.05, 0.4) * sampling_rate), np.float32) for _ in range(2))
    samples = np.concatenate([lead, samples, tail])
    if utterance.snr_db is not None:
        power = float(np.mean(samples**2)) or 1e-8
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (utterance.snr_db / 10)), samples.shape)
        samples = samples + noise.astype(np.float32)
    peak = float(np.abs(samples).max()) or 1.0
    return (samples * (0.9 / peak)).astype(np.float32)


def corpus_key(params: SyntheticCorpusParams, split: str, sampling_rate: int) -> str:
    """The content key of one split: every input that shapes it, this module's code and the grammar's included
    (a change to how clips are drawn is a change to every split)."""
    sources = [resources.sentences_path(params.language), grammar_path(), Path(__file__), Path(grammar_module.__file__)]
    return fingerprint(
        "synthetic-corpus-v3", params, split, sampling_rate, list(map(file_digest, sources)), espeak_version()
    )


def build_split(params: SyntheticCorpusParams, split: str, cache_dir: Path, sampling_rate: int = 16_000) -> Path:
    """Speak one split into a `datasets.Dataset` on disk (cached by its inputs, built once); return its path."""
    if split not in split_names(params.language):
        raise ValueError(
            f"the synthetic corpus (language {params.language!r}) has no split {split!r}: {list(split_names(params.language))}"
        )
    target = Path(cache_dir) / "corpus" / corpus_key(params, split, sampling_rate)

    def save(directory: Path) -> None:
        _speak_split(params, split, sampling_rate, fingerprint=target.name).save_to_disk(str(directory))

    return build_once(target, loads_from_disk, save)


COLUMNS = ("id", "audio", "text", "variety", "phenomenon", "voice", "snr_db")


def _speak_split(params: SyntheticCorpusParams, split: str, sampling_rate: int, fingerprint: str) -> datasets.Dataset:
    """Speak every planned utterance of `split` into a set whose fingerprint is its content key."""
    plan = [utterance for utterance in plan_utterances(params) if utterance.split == split]
    with ThreadPoolExecutor(max_workers=4) as pool:
        spoken = pool.map(lambda u: speak(u, sampling_rate), plan)
        audio = list(progress(spoken, total=len(plan), desc=f"speaking {split}", unit="clip"))
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    for utterance, samples in zip(plan, audio):
        columns["id"].append(utterance.id)
        columns["audio"].append({"bytes": encode_wav(samples, sampling_rate), "path": None})
        columns["text"].append(utterance.text)
        columns["variety"].append(utterance.variety)
        columns["phenomenon"].append(utterance.phenomenon)
        columns["voice"].append(f"{utterance.voice} s{utterance.speed_wpm} p{utterance.pitch}")
        columns["snr_db"].append(utterance.snr_db)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=sampling_rate, decode=False),
            "text": datasets.Value("string"),
            "variety": datasets.Value("string"),
            "phenomenon": datasets.Value("string"),
            "voice": datasets.Value("string"),
            "snr_db": datasets.Value("float32"),
        }
    )
    return dataset_with_audio(columns, features, fingerprint)
