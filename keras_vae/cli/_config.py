r"""`--config FILE`: a command's options from a YAML or JSON file, read against its option table.

```yaml
# either the options of one command ...
objective: miwae
k: 4
num-groups: 2          # the long flag's name, with - or _
# ... or a section per command
train: {epochs: 20}
sample: {num: 9, temperature: 0.5}
```

A run's config.json is such a file (its "train" section). Every value is
converted and checked by the same `Option` row that defines the flag (type,
choices, list length), so a config file accepts exactly what the command line
does; errors name the file and the option.
"""

import argparse
import json
import pathlib

import yaml

from keras_vae import _util
from keras_vae.cli._errors import PROG, UsageError
from keras_vae.cli._options import TRAIN_OPTIONS
from keras_vae.runs import RUN_MARKER


def read_config_file(path, command, options):
    """The options that a config file sets for `command`: {dest: value}.

    Args:
      path: a .json file, or YAML (any other suffix).
      command: the command's name; its section is used when the file has one
        (`demo` falls back to `train`).
      options: the command's `Option` rows.

    Raises:
      UsageError: a missing or unreadable file, an unknown option, a wrong value.
    """
    path = pathlib.Path(path)
    content = _load(path)
    section = "train" if command == "demo" and "demo" not in content else command
    if isinstance(content.get(section), dict):
        content = content[section]
    elif RUN_MARKER in content:
        raise UsageError(f"config file {path} is a run's config.json without a "
                         f"'{command}' section")
    by_key = {key: option for option in options if option.dest != "config"
              for key in option.config_keys()}
    values = {}
    for key, value in content.items():
        option = by_key.get(str(key).replace("-", "_"))
        if option is None:
            raise UsageError(f"config file {path}: unknown option '{key}' for "
                             f"'{PROG} {command}'")
        values[option.dest] = coerce(option, value, f"config file {path}: option '{key}'")
    return values


def _load(path):
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        text = path.read_text()
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise UsageError(f"cannot read config file {path}: {_util.first_line(error)}") \
            from error
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UsageError(f"config file {path}: expected a mapping of option: value")
    return content


def coerce(option, value, where):
    """`value` from a config file as the command line would give it for `option`.

    Raises:
      UsageError: naming `where`, when the value has the wrong type or is not a choice.
    """
    if value is None:
        return None
    if option.action != "store":
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false, got {value!r}")
        return value
    many = option.nargs in ("+", "*") or isinstance(option.nargs, int)
    values = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise UsageError(f"{where} takes one value, got a list {value!r}")
    if isinstance(option.nargs, int) and len(values) != option.nargs:
        raise UsageError(f"{where} takes {option.nargs} values, got {value!r}")
    converted = [_one(option, v, where) for v in values]
    return converted if many else converted[0]


def _one(option, value, where):
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where}: expected a single value, got {value!r}")
    if option.type is not None:
        _check_kind(option, value, where)
        try:
            value = option.type(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            raise UsageError(f"{where}: {error}") from None
    elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise UsageError(f"{where} must be a string, got {value!r}")
    else:
        value = str(value)
    choices = option.choice_values()
    if choices is not None and value not in choices:
        raise UsageError(f"{where}: invalid choice {value!r} "
                         f"(choose from {', '.join(str(c) for c in choices)})")
    return value


def value_kind(converter):
    """int or float when `converter` (an Option's type) reads a number, else None."""
    kind = getattr(converter, "kind", converter)
    return kind if kind in (int, float) else None


def checked_settings(values, where):
    """A config.json "train" section with each value checked by its option row.

    Raises:
      UsageError: naming `where` and the setting, when a value has the wrong type or range.
    """
    rows = {o.dest: o for o in TRAIN_OPTIONS}
    return {key: coerce(rows[key], value, f"{where}: setting '{key}'")
            if key in rows else value for key, value in dict(values).items()}


def _check_kind(option, value, where):
    """The value's own type must fit: an integer option takes an integer (not true, 2.7 or
    '4'); a number option takes a number, or a string in number notation (YAML 1.1 reads
    1e-3 as a string)."""
    kind = value_kind(option.type)
    name = getattr(option.type, "__name__", "a value")
    expected = {int: "an integer", float: "a number"}.get(kind, name)
    if name.startswith(("a ", "an ")):
        expected = name
    got = f"{value!r} ({type(value).__name__})"
    if isinstance(value, bool) or (kind is int and not isinstance(value, int)):
        raise UsageError(f"{where}: must be {expected}, got {got}")
    if kind is float and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise UsageError(f"{where}: must be {expected}, got {got}") from None


__all__ = ["read_config_file", "coerce", "value_kind", "checked_settings"]
