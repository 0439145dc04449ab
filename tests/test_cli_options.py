"""keras_vae.cli's option table: registry choices, --config coercion, TrainConfig, exit codes.

(The commands end to end are in test_cli.py.)
"""

import json
import re

import pytest

from keras_vae import cli, likelihoods, names, runs
from keras_vae.cli import _app, _config, _options, export, serve
from keras_vae.cli._errors import CommandFailed, Interrupted, UsageError

COMPAT_CONFIG = "tests/support/compat/run/config.json"


@pytest.fixture
def toy_likelihood():
    names.LIKELIHOODS.add("toy_cli", likelihoods.BernoulliLikelihood)
    yield "toy_cli"
    names.LIKELIHOODS.remove("toy_cli")


def test_choices_are_read_from_the_registry_when_the_parser_is_built(toy_likelihood):
    args, options, _ = cli.parse(["train", "--likelihood", toy_likelihood])
    assert args.likelihood == options["likelihood"] == toy_likelihood
    names.LIKELIHOODS.remove(toy_likelihood)
    with pytest.raises(UsageError, match="invalid choice"):
        cli.parse(["train", "--likelihood", toy_likelihood])


def test_train_config_writes_the_saved_keys_of_run_format_1():
    saved = json.loads(open(COMPAT_CONFIG).read())["train"]
    config = cli.TrainConfig.from_dict(saved)
    assert list(config.to_dict()) == list(saved)  # the same keys, in the same order
    assert config.to_dict() == saved
    assert set(cli.TRAIN_DEFAULTS) == set(saved) | {"out", "resume", "overwrite", "verbose",
                                                    "epoch_delay"}
    with pytest.raises(ValueError, match="unknown train settings"):
        cli.TrainConfig.from_dict({"epoch": 3})
    changed = cli.TrainConfig.from_dict({**saved, "epochs": 9, "seed": 1})
    assert changed.changed_keys(config) == ["epochs", "seed"]
    assert cli.TrainConfig.resumed(saved, {"epochs": saved["epochs"]}) == config
    with pytest.raises(UsageError, match="--epochs 9 conflicts with the run's saved epochs=2"):
        cli.TrainConfig.resumed(saved, {"epochs": 9, "out": "elsewhere"})


@pytest.mark.parametrize("objective, given, want", [
    ("elbo", {"k": 3, "free_bits": 0.5}, {"num_samples": 3, "free_bits": 0.5}),
    ("iwae", {"k": 3}, {"k": 3}),
    ("miwae", {"k": 2, "num_groups": 4}, {"k": 2, "num_groups": 4}),
    ("ciwae", {"ciwae_beta": 0.2}, {"beta": 0.2}),
])
def test_objective_flags_go_to_the_keywords_the_objective_takes(objective, given, want):
    assert cli.TrainConfig(objective=objective, **given).objective_kwargs() == want


def test_config_values_are_coerced_by_the_option_rows(tmp_path):
    table = dict((o.dest, o) for o in _options.TRAIN_OPTIONS + _options.RUN_OPTIONS)
    where = "here"
    assert _config.coerce(table["epochs"], 3, where) == 3
    assert _config.coerce(table["learning_rate"], "1e-3", where) == 1e-3
    assert _config.coerce(table["jit"], False, where) is False
    for option, value, message in (("epochs", 2.5, "option 'x': must be a positive integer"),
                                   ("epochs", True, "must be a positive integer"),
                                   ("jit", "no", "must be true or false"),
                                   ("prior", "flat", "invalid choice 'flat'"),
                                   ("data", ["a", "b"], "takes one value")):
        with pytest.raises(UsageError, match=message):
            _config.coerce(table[option], value, "option 'x'")
    indices = next(o for o in cli.sample.INTERPOLATE_OPTIONS if o.dest == "indices")
    assert _config.coerce(indices, [1, 2], where) == [1, 2]
    with pytest.raises(UsageError, match="takes 2 values"):
        _config.coerce(indices, [1], where)
    path = tmp_path / "e.yaml"
    path.write_text("version: 3\nformat: onnx\n")
    assert _config.read_config_file(path, "export", export.EXPORT_OPTIONS) == {
        "model_version": 3, "format": ["onnx"]}
    with pytest.raises(UsageError, match="without a 'evaluate' section"):
        cli.parse(["evaluate", "--config", COMPAT_CONFIG])


def test_defaults_fill_the_namespace_and_given_holds_the_rest():
    args, options, table = cli.parse(["evaluate", "RUN", "--k", "7"])
    assert options == {"run_dir": "RUN", "k": 7} and args.given == options
    assert (args.k, args.batch_size, args.snr_estimates, args.seed) == (7, 20, 32, 0)
    assert {o.dest for o in table} >= {"run_dir", "k", "config", "debug"}
    args, _, _ = cli.parse(["demo", "--no-export"])
    assert args.export is False and args.objective == "iwae" and args.out == "runs/demo"


def test_serve_hands_every_argument_to_the_server(monkeypatch):
    seen = []
    monkeypatch.setattr("keras_vae.serving.server.main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["serve", "--port", "1", "out/export", "--help"]) == 0
    assert seen == [["--port", "1", "out/export", "--help"]]
    args, _, _ = cli.parse(["serve"])
    assert args.run is serve.run and args.args == []


def test_exit_codes_come_from_the_exception_types():
    assert _app.exit_code(UsageError("x")) == cli.EXIT_USAGE
    assert _app.exit_code(runs.RunFolderError("x")) == cli.EXIT_RUN_FOLDER
    assert _app.exit_code(runs.CorruptRunError("x")) == cli.EXIT_CORRUPT
    assert _app.exit_code(Interrupted("x")) == _app.exit_code(KeyboardInterrupt()) == 130
    assert _app.exit_code(CommandFailed("x")) == _app.exit_code(OSError("x")) == 1


def test_an_unexpected_error_is_one_line(capsys, monkeypatch):
    def boom(args):
        raise OSError("disk full")

    monkeypatch.setattr(cli.evaluate, "evaluate_run", lambda *a, **k: boom(None))
    monkeypatch.setattr(runs, "read_config", lambda run_dir: {})
    code = cli.main(["evaluate", "RUN"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == ("keras-vae: error: OSError: disk full (run again "
                                         "with --debug for the traceback)")


def test_python_m_keras_vae_export_refuses_bad_arguments(tmp_path, capsys):
    assert export.module_main([str(tmp_path / "none.keras")]) == 2
    assert "keras_vae.export: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.module_main(["--no-such-flag"])


@pytest.mark.parametrize("text, option, expected", [
    ("epochs: true", "epochs", "must be a positive integer, got True (bool)"),
    ("epochs: 2.7", "epochs", "must be a positive integer, got 2.7 (float)"),
    ("latent_dim: '4'", "latent_dim", "must be a positive integer, got '4' (str)"),
    ("batch_size: [1, 2]", "batch_size", "takes one value, got a list [1, 2]"),
    ("seed: 'x'", "seed", "must be an integer >= 0, got 'x' (str)"),
    ("learning_rate: fast", "learning_rate", "must be a positive number, got 'fast' (str)"),
    ("kl_beta: -1", "kl_beta", "must be a number >= 0, got -1"),
    ("verbose: '1'", "verbose", "must be an integer, got '1' (str)"),
    ("jit: 1", "jit", "must be true or false, got 1"),
])
def test_config_values_are_checked_like_the_command_line(tmp_path, text, option, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError) as error:
        cli.parse(["train", "--config", str(path)])
    assert f"option '{option}'" in str(error.value) and expected in str(error.value)


def test_numbers_in_yaml_notation_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-3\nkl_beta: 1\nepochs: 3\n")  # YAML 1.1: 1e-3 is a str
    _, options, _ = cli.parse(["train", "--config", str(path)])
    assert options["learning_rate"] == 1e-3 and options["kl_beta"] == 1.0
    assert options["epochs"] == 3


def test_a_resumed_run_checks_its_saved_settings():
    saved = json.loads(open(COMPAT_CONFIG).read())["train"]
    assert cli.TrainConfig.resumed(saved, {}).latent_dim == 2
    for key, value, expected in (("latent_dim", "4", "a positive integer, got '4' (str)"),
                                 ("epochs", True, "a positive integer, got True"),
                                 ("batch_size", [1, 2], "takes one value")):
        with pytest.raises(UsageError, match=f"config.json: setting '{key}'.*"
                                             f"{re.escape(expected)}"):
            cli.TrainConfig.resumed({**saved, key: value}, {})
