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
    "STAGES": "kdlib.pipeline.graph",
    "build_stage": ("kdlib.pipeline.graph", "build"),
    "staleness": "kdlib.pipeline.graph",
    "run_pipeline": "kdlib.run",
    "read_corpora": "kdlib.stages.products",
    "labelled_pools": "kdlib.stages.products",
    "read_pseudo_labels": "kdlib.stages.products",
    "read_split": "kdlib.stages.products",
    "read_sweep_counts": "kdlib.stages.products",
    "read_students": "kdlib.stages.products",
    "read_student_sizes": "kdlib.stages.products",
    "read_predictions": "kdlib.stages.products",
    "read_scores": "kdlib.stages.products",
    "read_intervals": "kdlib.stages.products",
    "read_differences": "kdlib.stages.products",
    "read_efficiency": "kdlib.stages.products",
    "read_categories": "kdlib.stages.products",
    "load_model": "kdlib.models.families",
    "make_student": "kdlib.models.students",
    "multilingual_tokenizer": "kdlib.models.tokenizer",
    "transcribe": "kdlib.models.transcription",
    "normalize": "kdlib.scoring.normalizers",
    "score_pairs": "kdlib.scoring.metrics",
    "corpus_scores": "kdlib.scoring.metrics",
    "categorise": "kdlib.stages.error_analysis",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
    module, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    return getattr(import_module(module), attribute)
