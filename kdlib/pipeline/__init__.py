"""The declared stage graph with manifests and staleness (`graph`), and what a run records of itself (`provenance`)."""
