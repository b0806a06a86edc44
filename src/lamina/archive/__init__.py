"""Layer archives: confined extraction (`extract`), docker-diff change detection
(`changes`) and Docker-compatible layer tar writing (`layertar`).

Import the submodules directly; this package imports nothing itself so that the
CLI stays fast to start."""
