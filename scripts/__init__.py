"""Repository tooling: generators for the shipped artefacts (chart files, manifests)."""
