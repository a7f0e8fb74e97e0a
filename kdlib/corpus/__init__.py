"""The corpus layer: audio decoding and screening (`audio`), the espeak-ng world (`synthesis`, `grammar`,
`resources`), preparing hub, local and synthetic sets (`preparation`) and feeding rows to models (`loader`).

It knows no model: models read what it prepares.
"""
