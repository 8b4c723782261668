"""One settings object for every command, built from layered sources.

Layers, each overriding the one before: built-in defaults < a TOML file
(``digitctl.toml`` in the working directory, or ``--config PATH``) < environment
variables ``DIGITCTL_<NAME>`` < command-line flags. Every value remembers where it came
from, so ``digitctl config`` can show it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitctl.choices import ReaderName, RecipeName, Strategy, names
from digitctl.errors import ConfigError

CONFIG_FILENAME = "digitctl.toml"
ENV_PREFIX = "DIGITCTL_"


@dataclass(frozen=True)
class Settings:
    """Every tunable and path of digitctl, resolved. Paths may be relative to ``workspace``."""

    # Where things live
    workspace: Path = Path(".")
    cache_dir: Path | None = None  # None: platformdirs' user cache directory
    models_dir: Path | None = None  # None: <workspace>/models
    artifacts_dir: Path | None = None  # None: <workspace>/artifacts
    feedback_dir: Path | None = None  # None: <workspace>/feedback (corrections to learn from)
    # Data
    mirror: str | None = None  # URL or folder used instead of the public mirrors
    download_timeout: float = 30.0
    val_split: float = 0.1
    seed: int = 42
    # Training (None: the recipe's own value)
    recipe: str = "best"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    augment: bool | None = None  # None: the recipe's (`fast` trains without)
    limit: int | None = None
    strategy: str = "default"
    init_model: Path | None = None  # start training from this model's weights
    # Models and prediction
    model: Path | None = None  # None: workspace model, else the bundled one
    uncertain_below: float = 0.6
    unsafe_load: bool = False
    reader: str = "rules"  # rules, or line: the line reader (digitctl.linereading)
    cluster_address: str | None = None  # Dask scheduler for predict --engine dask
    # Serving
    host: str = "127.0.0.1"
    port: int = 8501
    max_upload_mb: int = 5
    # Diagnostics: full tracebacks and the native libraries' start-up logs
    debug: bool = False

    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived paths -------------------------------------------------------------
    @property
    def workspace_dir(self) -> Path:
        return Path(self.workspace).expanduser()

    def _in_workspace(self, value: Path | None, default: str) -> Path:
        path = Path(value).expanduser() if value is not None else Path(default)
        return path if path.is_absolute() else self.workspace_dir / path

    @property
    def models_path(self) -> Path:
        return self._in_workspace(self.models_dir, "models")

    @property
    def artifacts_path(self) -> Path:
        return self._in_workspace(self.artifacts_dir, "artifacts")

    @property
    def feedback_path(self) -> Path:
        return self._in_workspace(self.feedback_dir, "feedback")

    @property
    def cache_path(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("digitctl", appauthor=False))

    @property
    def raw_data_path(self) -> Path:
        return self.cache_path / "mnist"

    @property
    def processed_path(self) -> Path:
        return self.cache_path / "processed"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (as if given on the command line)."""
        return _apply(self, changes, "flag")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in setting_fields()}


def setting_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if f.name != "sources"]


@functools.cache
def _type_hints() -> dict[str, str]:
    """Each setting's annotation as text (``from __future__`` keeps them as strings)."""
    import typing

    hints = typing.get_type_hints(Settings)
    return {name: str(hint) for name, hint in hints.items() if name != "sources"}


def _field_type(name: str) -> str:
    text = _type_hints()[name]
    for kind in ("bool", "int", "float", "Path", "str"):
        if kind in text:
            return kind
    raise AssertionError(f"unhandled settings type {text}")  # pragma: no cover


def _optional(name: str) -> bool:
    return "None" in _type_hints()[name]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(name: str, value: Any, source: str) -> Any:
    """Convert ``value`` from ``source`` to the type of setting ``name``, or raise ConfigError."""
    kind = _field_type(name)
    where = f"{name} (from {source})"
    if value is None or (isinstance(value, str) and value.strip() == "" and _optional(name)):
        if _optional(name):
            return None
        raise ConfigError(f"{where} must not be empty")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "Path":
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError
            return Path(value)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where} must be {_KIND_WORDS[kind]}, got {value!r}; fix the value or remove it"
        ) from None


_KIND_WORDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "Path": "a path",
    "str": "text",
}


def _source(settings: Settings, name: str) -> str:
    if name in settings.sources:
        return settings.sources[name]
    default = next(f.default for f in setting_fields() if f.name == name)
    return "default" if getattr(settings, name) == default else "Settings(...) in Python"


def _validate(settings: Settings) -> None:
    """Raise ConfigError for the first value out of range, naming where it came from."""

    def fail(name: str, why: str) -> None:
        raise ConfigError(f"{name} (from {_source(settings, name)}) {why}")

    if not 0.0 < settings.val_split < 0.5:
        fail("val_split", f"must be between 0 and 0.5, got {settings.val_split}")
    if settings.recipe not in RecipeName.__members__.values():
        fail("recipe", f"must be one of {names(RecipeName)}, got {settings.recipe!r}")
    if settings.reader not in ReaderName.__members__.values():
        fail("reader", f"must be one of {names(ReaderName)}, got {settings.reader!r}")
    if settings.strategy not in Strategy.__members__.values():
        fail("strategy", f"must be one of {names(Strategy)}, got {settings.strategy!r}")
    for name in ("epochs", "batch_size", "limit"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            fail(name, f"must be at least 1, got {value}")
    if settings.learning_rate is not None and not settings.learning_rate > 0:
        fail("learning_rate", f"must be positive, got {settings.learning_rate}")
    if not 0 < settings.port < 65536:
        fail("port", f"must be between 1 and 65535, got {settings.port}")
    if not 0.0 <= settings.uncertain_below <= 1.0:
        fail("uncertain_below", f"must be between 0 and 1, got {settings.uncertain_below}")
    if settings.download_timeout <= 0:
        fail("download_timeout", f"must be positive, got {settings.download_timeout}")
    if settings.max_upload_mb < 1:
        fail("max_upload_mb", f"must be at least 1, got {settings.max_upload_mb}")


def _unknown_key(name: str, source: str) -> ConfigError:
    import difflib  # only on this error path: every command start pays for module imports

    known = [f.name for f in setting_fields()]
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
    return ConfigError(f"unknown setting {name!r} in {source}{suggestion}")


def _apply(base: Settings, changes: Mapping[str, Any], source: str) -> Settings:
    known = {f.name for f in setting_fields()}
    values: dict[str, Any] = {}
    sources = dict(base.sources)
    for name, value in changes.items():
        if name not in known:
            raise _unknown_key(name, source)
        values[name] = coerce(name, value, source)
        sources[name] = source
    return dataclasses.replace(base, **values, sources=sources)  # validated as it is built


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML settings file. Keys may sit at the top level or under ``[digitctl]``."""
    import tomllib  # here: most runs have no settings file, and start-up time is a target

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    table = document.pop("digitctl", None)
    if table is not None:
        if not isinstance(table, dict):
            raise ConfigError(f"[digitctl] in {path} must be a table")
        document.update(table)
    # Dashes are accepted in the file because that is how the flags are spelled.
    return {key.replace("-", "_"): value for key, value in document.items()}


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    known = {f.name for f in setting_fields()}
    values = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in known:
            values[name] = value
        elif name not in _ENV_IGNORED:
            raise _unknown_key(name, f"environment variable {key}")
    return values


# Variables that belong to digitctl but are not settings: DIGITCTL_CONFIG names the file.
_ENV_IGNORED = {"config"}


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve settings: defaults < TOML file < ``DIGITCTL_*`` environment < ``overrides``.

    ``config_file`` None means ``$DIGITCTL_CONFIG`` or ``digitctl.toml`` in ``cwd`` if it
    exists. ``overrides`` whose value is None are treated as not given.
    """
    environ = os.environ if environ is None else environ
    cwd_path = Path(cwd) if cwd is not None else Path.cwd()
    settings = Settings()
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = environ[ENV_PREFIX + "CONFIG"]
    if config_file is not None:
        path = Path(config_file)
        settings = _apply(settings, read_config_file(path), f"file {path}")
    elif (cwd_path / CONFIG_FILENAME).is_file():
        path = cwd_path / CONFIG_FILENAME
        settings = _apply(settings, read_config_file(path), f"file {path}")
    settings = _apply(settings, environment_values(environ), "environment")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = _apply(settings, given, "flag")
    return settings


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Rows of (name, value, source) for ``digitctl config``, derived paths included."""
    rows = []
    for f in setting_fields():
        value = getattr(settings, f.name)
        rows.append(
            {
                "name": f.name,
                "value": str(value) if isinstance(value, Path) else value,
                "source": settings.sources.get(f.name, "default"),
            }
        )
    derived = {
        "models_path": settings.models_path,
        "artifacts_path": settings.artifacts_path,
        "feedback_path": settings.feedback_path,
        "cache_path": settings.cache_path,
        "processed_path": settings.processed_path,
    }
    for name, value in derived.items():
        rows.append({"name": name, "value": str(value), "source": "derived"})
    return rows
