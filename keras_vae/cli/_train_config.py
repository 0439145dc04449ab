r"""`TrainConfig`: the settings of a training run, what `keras-vae train` runs from.

`to_dict()` is config.json's "train" section (RUN_FORMAT 1; settings added later,
`OPTIONAL_KEYS`, appear only when not their default), `from_dict` reads it back,
and `changed_keys(saved)` lists what a resumed run would change. The flags that
set these fields are the `TRAIN_OPTIONS` rows of `_options`.
"""

import dataclasses
import inspect
import os

from keras_vae import names
from keras_vae.cli._errors import UsageError


@dataclasses.dataclass
class TrainConfig:
    """The settings of a training run: config.json["train"] (the keys in this order)."""

    data: str = "embedded"
    binarization: str = "auto"
    train_examples: int = None
    test_examples: int = 1000
    preset: str = "mlp"
    latent_dim: int = None
    likelihood: str = "bernoulli"
    prior: str = "normal"
    posterior: str = "diagonal_gaussian"
    conditional: bool = False
    objective: str = "elbo"
    k: int = None
    num_groups: int = None
    ciwae_beta: float = None
    kl_beta: float = 1.0
    warmup_steps: int = 0
    free_bits: float = None
    gradient_estimator: str = "standard"
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 1e-3
    seed: int = None
    jit: bool = None  # Keras's "auto" (XLA): bench/ measured it the faster on CPU (issue 12)
    steps_per_execution: int = None  # the library's: training.DEFAULT_STEPS_PER_EXECUTION
    precision: str = "float32"
    strategy: str = "default"
    early_stopping: int = None
    pictures: bool = True

    @classmethod
    def keys(cls):
        """The setting names, in config.json's order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values):
        """The settings of a config.json "train" section (missing keys take the defaults).

        Raises:
          ValueError: a key that is no setting.
        """
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown train settings {unknown}; known: {list(cls.keys())}")
        return cls(**values)

    @classmethod
    def from_args(cls, args):
        """The settings of a parsed `keras-vae train` (or demo) namespace."""
        return cls(**{key: getattr(args, key) for key in cls.keys()})

    #: Settings added after run format 1, written only when they differ from their default,
    #: so a run that does not use them writes format 1's config.json exactly.
    OPTIONAL_KEYS = ("posterior", "conditional")

    def to_dict(self):
        """config.json's "train" section; OPTIONAL_KEYS only when not their default."""
        values = dataclasses.asdict(self)
        for key in self.OPTIONAL_KEYS:
            if values[key] == getattr(TrainConfig, key):
                del values[key]
        return values

    @classmethod
    def resumed(cls, saved, given):
        """The saved settings of a resumed run, checked.

        Args:
          saved: the run's config.json "train" section.
          given: the options given now (command line and config file).

        Raises:
          UsageError: an option given that would change a saved setting.
        """
        from keras_vae.cli._config import checked_settings  # it reads these rows

        saved = cls.from_dict(checked_settings(saved, "the run's config.json"))
        wanted = cls.from_dict({**saved.to_dict(),
                                **{k: v for k, v in given.items() if k in cls.keys()}})
        for key in wanted.changed_keys(saved):
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} {getattr(wanted, key)} conflicts with the run's saved "
                             f"{key}={getattr(saved, key)}: a resumed run keeps its settings "
                             f"(drop {flag}, or start a new run)")
        saved.check()
        return saved

    def changed_keys(self, saved):
        """The settings whose value differs from `saved`'s (a TrainConfig), in order."""
        return [key for key in self.keys() if getattr(self, key) != getattr(saved, key)]

    def objective_kwargs(self):
        """The keyword arguments of the objective from --k, --num-groups, --ciwae-beta, --free-bits.

        Each flag goes to the first of its keywords that the objective's constructor
        takes (--k is `k`, or `num_samples` for elbo).

        Raises:
          UsageError: a flag the chosen objective takes no keyword for.
        """
        kwargs = {}
        for key, keywords in _OBJECTIVE_FLAGS:
            value = getattr(self, key)
            if value is None:
                continue
            keyword = next((k for k in keywords if _takes(self.objective, k)), None)
            if keyword is None:
                raise UsageError(_flag_misfit(key, keywords, self.objective))
            kwargs[keyword] = value
        return kwargs

    def check(self):
        """UsageError for settings that conflict as flags, before anything is loaded."""
        self.objective_kwargs()
        if self.strategy == "multiworker" and "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multiworker needs the TF_CONFIG environment variable "
                             "(the cluster and this worker's task)")
        if self.precision == "mixed_float16" and self.strategy == "multiworker":
            raise UsageError("--precision mixed_float16 with --strategy multiworker is not "
                             "supported; use mixed_bfloat16 or float32")
        if self.train_examples is not None and self.train_examples < self.batch_size:
            raise UsageError(f"--train-examples {self.train_examples} is smaller than "
                             f"--batch-size {self.batch_size}")


#: TrainConfig key -> the objective keywords it may fill, in order of preference.
_OBJECTIVE_FLAGS = (("k", ("k", "num_samples")), ("num_groups", ("num_groups",)),
                    ("ciwae_beta", ("beta",)), ("free_bits", ("free_bits",)))


def _takes(objective, keyword):
    parameters = inspect.signature(names.OBJECTIVES.get(objective)).parameters
    return keyword in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _flag_misfit(key, keywords, objective):
    flag = "--" + key.replace("_", "-")
    users = [n for n in names.OBJECTIVES.names() if any(_takes(n, k) for k in keywords)]
    if len(users) == 1:
        return f"{flag} applies to --objective {users[0]}, not {objective}"
    who = " and ".join([", ".join(users[:-1]), users[-1]]) if users else "no objective"
    return f"{flag} applies to {who}, not --objective {objective}"


__all__ = ["TrainConfig"]
