"""The one config layer: dataclasses whose fields carry their own constraints, one checker, YAML with ``base:``.

A config class is a plain dataclass (what its constructor takes is what the YAML holds; ``asdict`` / ``replace``
work). Each field says what it accepts, beside its default and the comment that says why::

    @dataclass
    class DataConfig:
        views: int = ranged(2, 1, 64)                   # an integer in [1, 64]
        baseline: str = choice("small", BASELINES)      # one of the tuple the engine (and the CLI) use
        seed: int = 0                                   # the type alone

and ``__post_init__`` calls ``check_fields(self)``. Types come from the annotations (``int``, ``float``, ``bool``,
``str``, ``list``, ``dict``, ``X | None``, a nested config class); a value of the wrong type, out of range, not
among the choices, or refused by a field's own ``check`` is a ``ConfigError`` naming its dotted key. Loading from a
mapping (``from_mapping``) also refuses unknown keys; ``read_yaml`` resolves ``base:`` chains and ``--set`` items,
and ``load_yaml`` ties them together with one-line errors naming the file, the key and the ``--set`` item.

A constructor that takes a section (``MultiViewTransformer(track_conditioner=..., epipolar=...)``) accepts the
section object or its mapping and turns either into the object with ``section(cls, value, path)``, so the YAML, a
Python caller and a saved ``config.json`` go through the same checks.

Why dataclasses with field metadata and not pydantic v2 (measured for issue 22, 2 CPU cores under load): importing
pydantic and defining two small models took 0.27-0.39 s against 0.05-0.09 s for yaml + dataclasses, on every
command that reads a config, and pydantic is not a dependency of mvtrack; its errors are multi-line with links (a
bad value and an unknown key give five lines; each message tests/cli/test_bad_inputs.py pins would need
translating back to the one-line form), and its default lax mode turns ``"5"`` into 5 for an integer. Here the
checker is ~200 lines, imports nothing but the standard library and yaml, and errors stay one line with the key
path.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path

import yaml

TINY = 1e-300  # the lowest "positive" number: lr = 0 or flow_shift = 0 would train nothing or divide by zero
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               list: "a list"}


class ConfigError(ValueError):
    """A bad configuration value; ``key`` is its dotted path (``TrainConfig.data.seed``)."""

    def __init__(self, key: str, message: str, keys: list[str] | None = None):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.keys = keys or [key]  # the full paths at fault (the unknown ones, for unknown keys)


def _field(default, factory, metadata: dict):
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def ranged(default=MISSING, lo=None, hi=None, what: str | None = None, *, factory=MISSING):
    """A number in ``[lo, hi]`` (None: open; ``TINY``: positive), said as ``what`` in errors (default: the bounds);
    None passes when the field's type allows it."""
    if what is None:
        kind = "an integer" if isinstance(default, int) and not isinstance(default, bool) else "a number"
        what = (f"{kind} in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else
                f"{kind} > 0" if lo == TINY else f"{kind} >= {lo:g}" if lo is not None else f"{kind} <= {hi:g}")
    return _field(default, factory, {"range": (lo, hi, what)})


def choice(default, choices: tuple, *, factory=MISSING):
    """One of ``choices`` (the tuple the code that reads the value, and the CLI's ``click.Choice``, use too)."""
    return _field(default, factory, {"choices": tuple(choices)})


def checked(default=MISSING, check=None, *, factory=MISSING):
    """A value that ``check(value, key)`` accepts (it raises ``ConfigError`` naming ``key`` or a key below it)."""
    return _field(default, factory, {"check": check})


def items(ok, what: str):
    """A ``check`` for lists: every item passes ``ok``; else ``key[i]: expected <what>, got <item>``."""
    def check(value, key):
        for i, item in enumerate(value):
            if not ok(item):
                raise ConfigError(f"{key}[{i}]", f"expected {what}, got {item!r}")
    return check


def _coerce(value, hint, key: str):
    """``value`` as type ``hint`` (a class, ``X | None`` or a config dataclass); ``ConfigError`` naming ``key``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is not None:  # list[int] and the like: the container is what is checked
        hint = typing.get_origin(hint)
    if is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a section of keys ({', '.join(f.name for f in fields(hint))}), "
                                   f"got {value!r}")
        return from_mapping(hint, value, key)
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {value!r}")
        return float(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if hint is list and isinstance(value, tuple):
        value = list(value)
    if hint in _TYPE_WORDS and not isinstance(value, hint):
        raise ConfigError(key, f"expected {_TYPE_WORDS[hint]}, got {value!r}")
    return value


def _checked(cls, values: dict, path: str) -> dict:
    """``values`` (some of ``cls``'s fields) typed and checked against each field's constraints."""
    hints = typing.get_type_hints(cls)
    meta = {f.name: f.metadata for f in fields(cls)}
    out = {}
    for name, value in values.items():
        key = f"{path}.{name}"
        value = _coerce(value, hints[name], key)
        m = meta[name]
        if value is not None and "range" in m:
            lo, hi, what = m["range"]
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ConfigError(key, f"expected {what}, got {value!r}")
        if value is not None and "choices" in m and value not in m["choices"]:
            raise ConfigError(key, f"expected one of {', '.join(map(str, m['choices']))}, got {value!r}")
        if value is not None and m.get("check") is not None:
            m["check"](value, key)
        out[name] = value
    return out


def config_path(obj_or_cls) -> str:
    """How errors name a config built directly: its ``CONFIG_PATH`` (``tracking``), else its class name."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return getattr(cls, "CONFIG_PATH", cls.__name__)


def check_fields(obj) -> None:
    """Type and check every field of a config object in place (its ``__post_init__`` calls this)."""
    values = _checked(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)}, config_path(obj))
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def from_mapping(cls, raw: dict, path: str | None = None):
    """``cls(**raw)`` after refusing unknown keys and checking every value, errors naming ``path.key``."""
    path = path or config_path(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(map(str, set(raw) - set(names)))
    if unknown:
        raise ConfigError(path, f"unknown keys {unknown}; expected some of {sorted(names)}",
                          [f"{path}.{k}" for k in unknown])
    return cls(**_checked(cls, dict(raw), path))


def section(cls, value, path: str | None = None):
    """``value`` as a config of class ``cls``: None stays None, an instance is kept (it checked itself when built), a
    mapping is read by ``from_mapping`` (unknown keys refused, errors naming ``path.key``); anything else is a
    ``ConfigError`` naming ``path``."""
    path = path or config_path(cls)
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return from_mapping(cls, value, path)
    raise ConfigError(path, f"expected a section of keys ({', '.join(f.name for f in fields(cls))}) or null, got "
                            f"{value!r}")


def read_yaml(path: str | Path, what: str = "config", seen: list[Path] | None = None) -> dict:
    """A config file's mapping, on top of the file its ``base:`` key names (relative to it; sections are merged
    key by key, so a variant states only what it changes; ``tasks`` is replaced whole). Every YAML config of the
    project (training, benchmark splits and runs) is read here; ``what`` names the kind in a missing file's error."""
    path, seen = Path(path), seen or []
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {path}" + (f" (base: of {seen[-1]})" if seen else ""))
    if path.resolve() in seen:
        raise ValueError(f"{path}: base: chain loops back to itself")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected YAML)") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ValueError(f"{path}: base: expected the path of another config, got {base!r}")
    return _merge(read_yaml(path.parent / base, what, [*seen, path.resolve()]), raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "tasks" else v
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(e, 'problem', None) or type(e).__name__}{where}"


def apply_overrides(raw: dict, overrides: list[str], root: str) -> dict[str, str]:
    """Set ``key=value`` items (``data.frames=4``; values parsed as YAML) in ``raw``; returns ``{root.key: item}``."""
    given = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        *parents, leaf = key.strip().split(".")
        if not sep or not all(parents) or not leaf:
            raise ValueError(f"--set {item}: expected key=value (e.g. max_steps=100 or data.frames=4)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"--set {item}: the value is not valid YAML ({_yaml_problem(e)})") from None
        target = raw
        for i, p in enumerate(parents):
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                section = ".".join(parents[: i + 1])
                raise ValueError(f"--set {item}: {section} holds the value {target!r}, not a section of keys")
        target[leaf] = parsed
        given[f"{root}.{key.strip()}"] = item
    return given


def load_yaml(cls, path: str | Path, overrides: list[str] | None = None):
    """A config of class ``cls`` from a YAML file (``base:`` chains resolved) and ``--set`` items; any error is one
    ``ValueError`` line naming the file, the key and, when one gave the value, the ``--set`` item."""
    path = Path(path)
    raw = read_yaml(path, "training config")
    root = config_path(cls)
    given = apply_overrides(raw, overrides or [], root)
    try:
        return from_mapping(cls, raw, root)
    except ConfigError as e:
        hits = [v for k, v in given.items() if any(x == k or x.startswith((k + ".", k + "[")) for x in e.keys)]
        source = f" (from --set {hits[0]})" if hits else ""
        raise ValueError(f"{path}: {e}{source}") from None
