class TunixrtError(Exception):
    """Bad config or bad data: printed as one message, exit code 2, no traceback."""

    exit_code = 2


class ConfigError(TunixrtError):
    pass


class DataError(TunixrtError):
    pass


class HostFailedError(TunixrtError):
    """A host of a Ray launch died or failed: the stage stopped every host (exit 1)."""

    exit_code = 1
