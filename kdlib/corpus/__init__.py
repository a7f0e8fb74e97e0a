"""The corpus layer: audio decoding and screening (`audio`), the espeak-ng world (`synthesis`, `grammar`,
`resources`), preparing hub, local and synthetic sets (`preparation`), Mozilla's Common Voice download as a local set
(`common_voice`) and feeding rows to models (`loader`).

It knows no model: models read what it prepares.
"""
