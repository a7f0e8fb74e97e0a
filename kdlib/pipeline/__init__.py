"""The declared stage graph with manifests and staleness (`graph`), the code each stage is built by and its digest
(`code`), and what a run records of itself (`provenance`)."""
