"""Models: devices and dtypes (`runtime`), the machine in words (`machine`), Whisper's tokenizer (`tokenizer`),
building Whispers (`whisper`), whisper-base from CTranslate2's format (`ctranslate2`), the families kdlib loads
(`families`), the teacher (`teacher`), DW-e-d students (`students`), training targets (`targets`), the training loop
(`training`), batched generation (`transcription`), model cards (`cards`) and uploading to the Hub (`hub`).
"""
