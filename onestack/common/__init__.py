"""Cross-cutting pieces: configuration, errors, logging, the revert stack."""
