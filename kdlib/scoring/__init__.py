"""Scoring: text normalisers (`normalizers`), WER/CER and alignments (`metrics`), bootstrap intervals (`intervals`)
and aligned REF/HYP views (`alignment`).

Pure computation on strings and numbers: it knows no model, corpus or stage.
"""
