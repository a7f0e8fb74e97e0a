"""The ``english`` view: transformers' Whisper `EnglishTextNormalizer`, the normaliser of the authors' WER filter.

The authors' distillation command passes no `--language`, so their `run_distillation.py` filters pairs on
`EnglishTextNormalizer(tokenizer.english_spelling_normalizer)` (their fork's training/run_distillation.py,
L1063-1066; `docs/authors-protocol.md` §6), not on their evaluation normaliser (the ``authors`` view). On Arabic
it lower-cases and keeps Latin words, deletes ``[…]``, ``<…>`` and ``(…)`` spans, decomposes (NFKD) and drops
combining marks, so ؤ → و, ئ → ي, أ → ا and the lam-alef ligatures unfold, and turns other symbols and
punctuation into spaces.

The class is transformers' own, imported, not copied. Its spelling map (British → American, 1,740 words) is the
`normalizer.json` that the hub's Whisper tokenizers carry. Offline it is read from openai-whisper's
`whisper/normalizers/english.json` (the `smoke` extra installs openai-whisper), which is the same map less one
entry, ``"mm": "hmm"``, removed from openai-whisper in 2023 (openai/whisper ea1c266) after the hub files were
written: it is added back here, so the map is the hub's. It only ever touches Latin words (``20mm`` → ``20 hmm``).
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

HUB_ONLY_SPELLINGS = {"mm": "hmm"}  # in the hub's normalizer.json, no longer in openai-whisper's english.json


def spelling_file() -> Path:
    """openai-whisper's `normalizers/english.json`, found without importing the package."""
    spec = importlib.util.find_spec("whisper")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(folder) / "normalizers" / "english.json" for folder in folders), None)
    if path is None or not path.is_file():
        raise RuntimeError(
            "the english view needs Whisper's English spelling map, read from openai-whisper, which is not "
            "installed: pip install -e '.[smoke]' (or pip install openai-whisper==20250625)"
        )
    return path


@cache
def spelling_map() -> dict[str, str]:
    """The hub Whisper tokenizers' `normalizer.json`: openai-whisper's `english.json` plus `HUB_ONLY_SPELLINGS`."""
    mapping = json.loads(spelling_file().read_text(encoding="utf-8"))
    return {**mapping, **HUB_ONLY_SPELLINGS}


@cache
def _normalizer() -> EnglishTextNormalizer:
    return EnglishTextNormalizer(spelling_map())


def normalize_english(text: str) -> str:
    """`text` through transformers' `EnglishTextNormalizer` with the hub's spelling map (the ``english`` view)."""
    return _normalizer()(text)
