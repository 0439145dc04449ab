"""The one registry of names: presets, posteriors, priors, likelihoods, objectives, estimators, data sets.

Every name a user can type (`VAE(likelihood="gaussian")`, `keras-vae train --prior vamp`,
a config file, an export manifest) is looked up here, and nowhere else. A family member
registers itself where it is defined, with a decorator:

```python
from keras_vae import likelihoods, names

@keras.saving.register_keras_serializable(package="my_package")
@names.LIKELIHOODS.register("laplace")
class LaplaceLikelihood(likelihoods.Likelihood):
    ...

model = keras_vae.VAE(likelihood="laplace")        # and `--likelihood laplace` in the CLI
```

One class may be registered under several names with different defaults
(`gaussian` and `gaussian_learned_scale` are `GaussianLikelihood` with `learn_scale`
False and True); `name_of(obj)` maps an instance back to the most specific of them.
A registry builds a member by calling it with the keyword arguments it gives (its
context, e.g. `event_shape` and `latent_dim`), passing only those the callable's
signature names, so a member's constructor takes just what it needs.
"""

import dataclasses
import inspect


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered name: `factory(**context, **defaults, **kwargs)` builds the member.

    Attributes:
      name: the canonical name.
      factory: a class or a function (for data-only families, any value).
      defaults: keyword arguments this name fixes (e.g. learn_scale=True).
      aliases: other names that mean the same entry.
      description: one line for help texts (the factory's first docstring line by default).
    """

    name: str
    factory: object
    defaults: dict
    aliases: tuple
    description: str


class Registry:
    """Names of one family of things, in registration order.

    Args:
      family: what the names name ('likelihood', 'prior', ...), used in messages.
      attribute: the registry's name in this module (for messages), e.g. 'LIKELIHOODS'.
    """

    def __init__(self, family, attribute):
        self.family = family
        self.attribute = attribute
        self._entries = {}
        self._lookup = {}

    def register(self, name, *, aliases=(), description=None, **defaults):
        """A decorator that registers a class or function under `name` (and returns it)."""

        def decorator(factory):
            self.add(name, factory, aliases=aliases, description=description, **defaults)
            return factory

        return decorator

    def add(self, name, factory, *, aliases=(), description=None, **defaults):
        """Registers `factory` under `name`; registering a taken name again replaces it."""
        name = _key(name)
        aliases = tuple(_key(a) for a in aliases)
        for key in (name,) + aliases:
            owner = self._lookup.get(key)
            if owner is not None and owner != name:
                raise ValueError(
                    f"The {self.family} name {key!r} is taken by {owner!r}; choose another."
                )
        if description is None:
            doc = inspect.getdoc(factory) if callable(factory) else None
            description = doc.splitlines()[0] if doc else ""
        self.remove(name)
        self._entries[name] = Entry(name, factory, dict(defaults), aliases, description)
        for key in (name,) + aliases:
            self._lookup[key] = name

    def remove(self, name):
        """Forgets `name` (and its aliases); a name that is not registered is ignored."""
        entry = self._entries.pop(_key(name), None)
        if entry is not None:
            for key in (entry.name,) + entry.aliases:
                self._lookup.pop(key, None)

    def names(self):
        """The canonical names, in registration order (what a CLI offers as choices)."""
        return tuple(self._entries)

    def __contains__(self, name):
        return isinstance(name, str) and _key(name) in self._lookup

    def __iter__(self):
        return iter(self._entries.values())

    def entry(self, name):
        """The `Entry` of `name` or one of its aliases; ValueError naming the choices."""
        if name not in self:
            raise ValueError(
                f"Unknown {self.family} {name!r}; choose one of {list(self.names())}."
            )
        return self._entries[self._lookup[_key(name)]]

    def canonical(self, name):
        """The canonical name of `name` (an alias or itself)."""
        return self.entry(name).name

    def get(self, name):
        """The registered factory (or value) of `name`."""
        return self.entry(name).factory

    def build(self, name, context=None, /, **kwargs):
        """Calls `name`'s factory with its defaults, `kwargs` and the context it accepts.

        `context` holds what the caller knows (e.g. `event_shape`); only the keys that
        the factory's signature names are passed, so a member takes what it needs.
        """
        entry = self.entry(name)
        arguments = {**_accepted(entry.factory, context or {}), **entry.defaults, **kwargs}
        return entry.factory(**arguments)

    def name_of(self, obj):
        """The most specific registered name whose class and defaults match `obj`.

        Raises ValueError when `obj` is no registered member (e.g. a user's own layer
        that was never registered).
        """
        config = obj.get_config() if hasattr(obj, "get_config") else {}
        best = None
        for entry in self._entries.values():
            if not (isinstance(entry.factory, type) and type(obj) is entry.factory):
                continue
            if all(config.get(k, getattr(obj, k, None)) == v for k, v in entry.defaults.items()):
                if best is None or len(entry.defaults) > len(best.defaults):
                    best = entry
        if best is None:
            raise ValueError(
                f"{type(obj).__name__} is no registered {self.family}: register it with "
                f"keras_vae.names.{self.attribute}.register(name)."
            )
        return best.name

    def __repr__(self):
        return f"Registry({self.family!r}, names={list(self.names())})"


def _key(name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"A registered name must be a non-empty string, got {name!r}.")
    return name.lower()


def _accepted(factory, context):
    """The items of `context` that `factory` takes as keyword arguments."""
    if not context:
        return {}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in context.items() if k in parameters}


#: Encoder/decoder architectures (`networks.Preset` values).
PRESETS = Registry("preset", "PRESETS")
#: q(z|x) heads (`posteriors`).
POSTERIORS = Registry("posterior", "POSTERIORS")
#: p(z) (`priors.Prior` subclasses).
PRIORS = Registry("prior", "PRIORS")
#: p(x|z) (`likelihoods.Likelihood` subclasses).
LIKELIHOODS = Registry("likelihood", "LIKELIHOODS")
#: Training objectives (`objectives.Objective` subclasses).
OBJECTIVES = Registry("objective", "OBJECTIVES")
#: Gradient estimators of the encoder (values: one-line descriptions).
GRADIENT_ESTIMATORS = Registry("gradient_estimator", "GRADIENT_ESTIMATORS")
#: Data sets `data.load` knows by name (values: loader functions).
DATASETS = Registry("data set", "DATASETS")

GRADIENT_ESTIMATORS.add("standard", "the gradient of the objective itself (reparameterised)")
GRADIENT_ESTIMATORS.add(
    "dreg", "doubly-reparameterised encoder gradients (Tucker et al., 2019)"
)

__all__ = [
    "Entry", "Registry", "PRESETS", "POSTERIORS", "PRIORS", "LIKELIHOODS", "OBJECTIVES",
    "GRADIENT_ESTIMATORS", "DATASETS",
]
