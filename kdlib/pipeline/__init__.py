"""The declared stage graph with manifests and staleness (`graph`), the code each stage is built by and its digest
(`code`), the checks before any work (`preflight`), the sizing model (`sizing`), and what a run records of itself
(`provenance`)."""
