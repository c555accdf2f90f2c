"""Errors that name what went wrong, where, and how to fix it."""

from __future__ import annotations


class BoltzKinemaError(Exception):
    """Base class for errors a user can act on."""


class InputError(BoltzKinemaError):
    """A raw system that cannot be used; it is quarantined (or fails the job in strict mode)."""

    def __init__(self, reason: str, fix: str, *, code: str, file: str = "", group: str = ""):
        self.reason = reason
        self.fix = fix
        self.code = code
        self.file = file
        self.group = group
        where = f"{file}" + (f" [{group}]" if group else "")
        super().__init__(f"{where}: {reason}. Fix: {fix}" if where else f"{reason}. Fix: {fix}")

    def located(self, file: str, group: str) -> InputError:
        """Return the same error, naming the file and group it came from."""
        return InputError(self.reason, self.fix, code=self.code, file=file, group=group)


class ConfigError(BoltzKinemaError):
    """The configuration is invalid."""


class CheckpointError(BoltzKinemaError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the model."""


class SystemRefused(BoltzKinemaError):
    """A trunk backend cannot represent this one system: it is left out of the cache (and so of
    the manifest) with the reason, and the shard's other systems go on."""


class DiskFullError(BoltzKinemaError):
    """A write would not fit, or did not fit, on its filesystem; the temporary file is gone."""


class RecordError(BoltzKinemaError):
    """A record between stages (shard report, trunk index) that this version cannot read."""
