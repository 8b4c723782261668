"""The project's exceptions: each message says what is wrong and what to do."""

from __future__ import annotations


class DigitctlError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits non-zero."""

    exit_code = 1


class ConfigError(DigitctlError):
    """A bad configuration value, file or key."""

    exit_code = 2


class DataError(DigitctlError):
    """MNIST data that is missing, corrupt or cannot be fetched."""


class DownloadError(DataError):
    """Every mirror failed."""


class ImageError(DigitctlError):
    """An input image that cannot be read or holds no digit."""


class NoDigitFound(ImageError):
    """The image was read but holds nothing that looks like a digit."""


class ModelError(DigitctlError):
    """A model file that is missing, unsafe or unreadable."""


class TrainingInterrupted(DigitctlError):
    """Training was stopped by the user; the best checkpoint so far is kept."""

    exit_code = 130
