class TunixrtError(Exception):
    """Bad config or bad data: printed as one message, exit code 2, no traceback."""

    exit_code = 2


class ConfigError(TunixrtError):
    pass


class DataError(TunixrtError):
    pass
