"""Exceptions whose messages name the problem, so a caller can show them as one line."""


class NovaError(Exception):
    """Base class of every error nova raises on purpose."""


class CheckpointError(NovaError, ValueError):
    """A folder or config is not a usable NOVA checkpoint (missing file, unknown arch, bad config)."""


class ModelNotAvailableError(NovaError, OSError):
    """A Hub checkpoint cannot be reached or is not in the local cache."""


class InputError(NovaError, ValueError):
    """An argument of a pipeline call is out of range or has the wrong type/shape."""
