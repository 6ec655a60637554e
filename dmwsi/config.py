"""Configuration: defaults from conf/dmwsi.toml, then a user file, then
environment variables (DMWSI_<SECTION>_<KEY>), then explicit overrides (CLI).

Values keep the type of the default they override, so an environment string
"9080" becomes the int 9080 and a typo'd key fails loudly instead of being
ignored.
"""
import copy
import os
import tomllib
from pathlib import Path

from dmwsi.resources import CONF_DIR
from dmwsi.errors import DmwsiError

# The source checkout. Only tests and developer tools may use it (docs/, the
# shipped files as authored): an installed wheel has no checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = CONF_DIR / "dmwsi.toml"
ENV_PREFIX = "DMWSI_"


class ConfigError(DmwsiError, ValueError):
    pass


class Config:
    """Sections of settings: ``config["server"]["http_port"]``."""

    def __init__(self, sections, base_dir):
        self.sections = sections
        self.base_dir = Path(base_dir)

    def __getitem__(self, section):
        return self.sections[section]

    @property
    def data_dir(self):
        return (self.base_dir / self.sections["server"]["data_dir"]).resolve()

    def data_path(self, value):
        """A path setting, relative to the data directory unless absolute."""
        return self.data_dir / value if value else None


def _coerce(default, value, name):
    if isinstance(value, str) and not isinstance(default, str):
        try:
            if isinstance(default, bool):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return type(default)(value)
        except ValueError:
            raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")
    if default is not None and not isinstance(value, type(default)) \
            and not (isinstance(default, float) and isinstance(value, int)):
        raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")
    return value


def _merge(base, update, origin):
    for section, values in update.items():
        if section not in base:
            if isinstance(values, dict):
                base[section] = dict(values)  # a section the defaults do not know (e.g. policy tables)
                continue
            raise ConfigError(f"{origin}: unknown setting {section!r}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        for key, value in values.items():
            if key in base[section]:
                value = _coerce(base[section][key], value, f"{origin}: {section}.{key}")
            base[section][key] = value


def load_config(path=None, overrides=None, environ=None):
    """Build the effective configuration.

    ``overrides`` is ``{"section": {"key": value}}`` (from CLI flags).
    """
    environ = os.environ if environ is None else environ
    with open(DEFAULT_CONFIG, "rb") as f:
        sections = tomllib.load(f)
    base_dir = Path.cwd()
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                _merge(sections, tomllib.load(f), str(path))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}")
        base_dir = path.resolve().parent
    env_values = {}
    for section, values in sections.items():
        for key in values:
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                env_values.setdefault(section, {})[key] = environ[name]
    _merge(sections, env_values, "environment")
    _merge(sections, copy.deepcopy(overrides or {}), "command line")
    return Config(sections, base_dir)
