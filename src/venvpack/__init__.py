"""venvpack: relocatable virtual environments that carry their own CPython."""

__all__ = ["__version__"]

__version__ = "0.1.0"
