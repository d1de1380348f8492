"""tunixrt: reasoning traces to Tunix SFT datasets, trained checkpoints and evaluations."""

import importlib.metadata


def installed_version() -> str | None:
    """The installed package's version; None from a source tree that is not installed (then no
    version describes the code, and none may enter a hashed out)."""
    try:
        return importlib.metadata.version("tunixrt")
    except importlib.metadata.PackageNotFoundError:
        return None


__version__ = installed_version() or "0.0.0+unknown"
