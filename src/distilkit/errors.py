"""User-facing errors: one line that says what is wrong and what to do."""

from __future__ import annotations


class DistilkitError(Exception):
    """An error the user can fix. The CLI prints its message as one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message would read like a traceback.
        super().__init__(" ".join(str(message).split()))


class ConfigError(DistilkitError):
    """A flag or config value is invalid (reported before any work starts)."""


class DataError(DistilkitError):
    """An input file is missing, empty, binary or malformed."""


class ModelError(DistilkitError):
    """A model directory is missing, unreadable, or incompatible with the other model."""


class CheckpointError(DistilkitError):
    """A checkpoint is missing, truncated or corrupted."""


class TrainingError(DistilkitError):
    """Training cannot go on (e.g. repeated non-finite losses)."""
