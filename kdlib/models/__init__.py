"""Models: devices and dtypes (`runtime`), Whisper's tokenizer (`tokenizer`), the families kdlib loads
(`families`), the teacher (`teacher`), DW-e-d students (`students`), the training loop (`training`),
batched generation (`transcription`) and model cards (`cards`).
"""
