"""kdlib: knowledge distillation of Whisper for Arabic speech recognition, reproduced end to end.

The public API, by concern (each name is imported on first use, so `import kdlib` stays light):

- parameters: `load_params`, `Params`, `ParamsError`, `describe_params`
- the stage graph: `STAGES`, `build_stage`, `staleness`, `run_pipeline`
- products (what notebooks read): `read_corpora`, `labelled_pools`, `read_pseudo_labels`, `read_split`,
  `read_sweep_counts`, `read_students`, `read_student_sizes`, `read_predictions`, `read_scores`, `read_intervals`,
  `read_differences`, `read_efficiency`, `read_categories`
- models: `load_model` (Whisper, SeamlessM4T, CTC), `make_student`, `transcribe`, `multilingual_tokenizer`
  (Whisper's, built offline from openai-whisper's tiktoken file)
- scoring: `normalize`, `score_pairs`, `corpus_scores`, `categorise`
"""

from importlib import import_module
from importlib.metadata import version

__version__ = version("kdlib")

_API = {
    "load_params": "kdlib.config",
    "Params": "kdlib.config",
    "ParamsError": "kdlib.config",
    "describe_params": "kdlib.config",
    "STAGES": "kdlib.stages",
    "build_stage": ("kdlib.stages", "build"),
    "staleness": "kdlib.stages",
    "run_pipeline": "kdlib.run",
    "read_corpora": "kdlib.products",
    "labelled_pools": "kdlib.products",
    "read_pseudo_labels": "kdlib.products",
    "read_split": "kdlib.products",
    "read_sweep_counts": "kdlib.products",
    "read_students": "kdlib.products",
    "read_student_sizes": "kdlib.products",
    "read_predictions": "kdlib.products",
    "read_scores": "kdlib.products",
    "read_intervals": "kdlib.products",
    "read_differences": "kdlib.products",
    "read_efficiency": "kdlib.products",
    "read_categories": "kdlib.products",
    "load_model": "kdlib.families",
    "make_student": "kdlib.students",
    "multilingual_tokenizer": "kdlib.whisper_tokenizer",
    "transcribe": "kdlib.transcribe",
    "normalize": "kdlib.text",
    "score_pairs": "kdlib.metrics",
    "corpus_scores": "kdlib.metrics",
    "categorise": "kdlib.error_analysis",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
    module, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    return getattr(import_module(module), attribute)
