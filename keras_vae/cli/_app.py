"""The root of `keras-vae`: the parser of every command, `parse`, and `main` with its exit codes.

Each command module has `register(subparsers)`, which adds its parser(s) with
`set_defaults(run=..., option_table=...)`, and `run(args) -> exit code`.
`main` parses, merges `--config` (from the same option table), calls
`args.run(args)`, and turns an exception into one line on stderr and the exit
code of its type (`EXIT_CODES`).
"""

import argparse
import sys
import traceback

from keras_vae import _backend, _util, runs
from keras_vae.cli import compare, demo, evaluate, export, sample, serve, train, traverse
from keras_vae.cli._config import read_config_file
from keras_vae.cli._errors import (
    EXIT_CORRUPT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_RUN_FOLDER, EXIT_USAGE, PROG,
    CommandFailed, Interrupted, UsageError,
)

#: The command modules, in the order of `keras-vae --help`.
COMMANDS = (demo, train, evaluate, sample, traverse, export, compare, serve)

#: Exception type -> exit code; the first match wins. Anything else exits 1.
EXIT_CODES = (
    (UsageError, EXIT_USAGE),
    (runs.RunFolderError, EXIT_RUN_FOLDER),
    (runs.CorruptRunError, EXIT_CORRUPT),
    (Interrupted, EXIT_INTERRUPTED),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (CommandFailed, EXIT_FAILURE),
)


class Parser(argparse.ArgumentParser):
    """argparse whose errors raise UsageError (one line, no usage dump, no sys.exit)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')", prog=self.prog)


def build_parser():
    """The `keras-vae` parser; registered names (likelihoods, priors, ...) are read now."""
    parser = Parser(
        prog=PROG,
        description="Train, evaluate, picture, export and serve variational autoencoders "
                    "(Keras 3 + TensorFlow Probability).",
        epilog="Start with 'keras-vae demo'. Exit codes: 0 ok, 1 failure, 2 bad or "
               "conflicting arguments, 3 run folder missing/foreign/in use, 4 corrupt "
               "checkpoint or model, 130 interrupted. Every option can also come from "
               "--config FILE (YAML or JSON). TensorFlow's C++ start-up log is hidden: "
               "--debug prints it, and setting TF_CPP_MIN_LOG_LEVEL (e.g. 0) lets "
               "TensorFlow log as that level says.",
    )
    version = _util.versions(("keras-vae",))["keras-vae"] or "unknown"
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def parse(argv):
    """Parses argv: (namespace with every option filled, the options given, the option table).

    The options given are those of the command line and of `--config`, the
    command line winning; the namespace adds the defaults of the others, and
    `args.given` is the dict of those given.

    Raises:
      UsageError: bad arguments, or no command.
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.command is None:
        parser.print_help()
        raise UsageError("no command given: start with 'keras-vae demo'")
    table = getattr(args, "option_table", ())
    given = {o.dest: getattr(args, o.dest) for o in table if getattr(args, o.dest) is not None}
    options = {}
    if given.get("config"):
        options.update(read_config_file(given["config"], args.command, table))
    options.update(given)
    for option in table:
        setattr(args, option.dest, options.get(option.dest, option.default))
    args.given = options
    return args, options, table


def exit_code(error):
    """The exit code of an exception, from `EXIT_CODES` (1 for any other)."""
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), EXIT_FAILURE)


def _report(error, debug):
    """One line on stderr for `error`; returns its exit code."""
    if debug:
        traceback.print_exc()
    code = exit_code(error)
    kind = "interrupted" if code == EXIT_INTERRUPTED else "error"
    if any(isinstance(error, k) for k, _ in EXIT_CODES):
        message = str(error)
        line = f"{getattr(error, 'prog', PROG)}: {kind}" + (f": {message}" if message else "")
    else:
        line = (f"{PROG}: error: {type(error).__name__}: {_util.first_line(error)} "
                "(run again with --debug for the traceback)")
    print(line, file=sys.stderr, flush=True)
    return code


def main(argv=None):
    """The `keras-vae` command: runs one command and returns its exit code.

    Args:
      argv: the arguments (default: sys.argv[1:]).
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug = "--debug" in argv
    try:
        args, _, _ = parse(argv)
        debug = debug or bool(getattr(args, "debug", False))
        if debug:
            for line in _backend.startup_log():
                print(line, file=sys.stderr)
        return int(args.run(args) or 0)
    except SystemExit as error:  # --help, --version, and a command that exits (serve)
        if error.code is None or isinstance(error.code, int):
            return error.code or 0
        print(error.code, file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - one line, an exit code
        return _report(error, debug)


__all__ = ["COMMANDS", "EXIT_CODES", "Parser", "build_parser", "parse", "exit_code", "main"]
