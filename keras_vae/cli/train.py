r"""`keras-vae train`: train a VAE into a run folder, resumable after a kill or a Ctrl-C.

```none
keras-vae train --out runs/a --objective iwae --k 5 --epochs 20
keras-vae train --out runs/a --resume                    # continue a killed or interrupted run
keras-vae train --config runs/a/config.json --out runs/b # run a again
```

The run folder (files, states, callbacks) is `keras_vae.runs`; the model is
`keras_vae.VAE`; the batches are `data.training_stream`'s, functions of
(seed, epoch), so a resumed run ends where an uninterrupted one would have.
"""

import datetime
import os
import pathlib
import shutil
import sys
import tempfile
import time

from keras_vae import _util, batches, class_pictures, data, names, objectives, plotting, runs
from keras_vae import training
from keras_vae._backend import keras, tf
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_OK, CommandFailed, Interrupted, UsageError
from keras_vae.cli._options import TrainConfig
from keras_vae.model import VAE

OPTIONS = _options.TRAIN_OPTIONS + _options.RUN_OPTIONS + _options.COMMON


def register(subparsers):
    _options.add_command(
        subparsers, "train", OPTIONS, run, help="train a VAE into a run folder",
        description="Train a VAE. The run folder gets config.json, history.json/.csv, "
                    "model.keras, checkpoints/, logs/ (TensorBoard) and pictures/*.png.")


def run(args):
    result = train(args)
    if result is not None:
        run_dir = result["run_dir"]
        _common.say(f"keras-vae: run folder {run_dir}: config.json, history.json/.csv, "
                    f"model.keras, checkpoints/, logs/ (tensorboard --logdir "
                    f"{run_dir / 'logs'}), pictures/")
    return EXIT_OK


def train(args, command="train"):
    """Trains the run `args` describe (a parsed train or demo namespace).

    Returns:
      {'run_dir', 'model', 'pictures', 'config'}, or None when the resumed run
      had already finished.
    """
    config = TrainConfig.from_args(args)
    config.check()
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite conflict: continue the run or replace it")
    run_dir, scratch = _run_folder(args, config)
    saved = runs.prepare(run_dir, resume=args.resume, overwrite=args.overwrite and not scratch)
    if saved is not None:
        config = TrainConfig.resumed(saved.get("train") or {}, args.given)
        state = runs.read_state(run_dir)
        if state.get("status") == "finished":
            _common.say(f"keras-vae: {run_dir} already finished ({state.get('epochs_done')} "
                        "epochs); nothing to resume")
            return None
    else:
        _common.check_data_name(config.data)
        if config.data not in names.DATASETS:  # a path: keep it absolute in config.json
            config.data = str(pathlib.Path(config.data).expanduser().resolve())
    if config.seed is None:
        config.seed = int.from_bytes(os.urandom(3), "little")
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    ds, x_train, x_test, y_test, binarization = _common.load_data(config.to_dict())
    if len(x_train) < config.batch_size:
        raise UsageError(f"the training set has {len(x_train)} examples, fewer than "
                         f"--batch-size {config.batch_size}")
    labels = _labels(config, ds, len(x_train), y_test)
    model, start_epoch = _model(config, x_train, run_dir if saved else None,
                                labels and labels["num_classes"])
    _take_folder(run_dir, saved is not None)  # the old run goes only now, data and model ready
    if saved is None:
        runs.write_config(run_dir, command, config.to_dict(), {
            **ds.protocol, "binarization_used": binarization,
            "num_train_used": int(len(x_train)), "num_test_used": int(len(x_test)),
            **({"num_classes": labels["num_classes"]} if labels else {})}, sys.argv[1:])
    runs.mark_running(run_dir, config.epochs)
    if saved is not None:
        _common.say(f"keras-vae: resuming {run_dir} at epoch {start_epoch + 1}/{config.epochs}")
    rows = {e: r for e, r in runs.history_rows(run_dir).items() if e <= start_epoch}
    interrupted = _fit(model, run_dir, config, args, (x_train, x_test), start_epoch, rows,
                       binarization, labels)
    pictures = _finish(model, run_dir, config, rows, interrupted, started,
                       (x_test, y_test) if config.pictures and scratch is None else None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"run_dir": run_dir, "model": model, "pictures": pictures, "config": config}


def _take_folder(run_dir, resuming):
    """Makes `run_dir` this run's: a resumed run drops a killed writer's temporary files; a
    new one replaces the old run (`runs.replace`, checked by `runs.prepare` beforehand)."""
    if resuming:
        runs.remove_leftovers(run_dir)
    else:
        runs.replace(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _pictures(model, run_dir, pictures_of, seed):
    """`plotting.run_pictures` into a hidden folder, then swapped with pictures/ whole."""
    final = run_dir / "pictures"
    stage = run_dir / f".pictures-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    draw = class_pictures if model.is_conditional else plotting
    written = draw.run_pictures(model, *pictures_of, runs.read_history(run_dir), stage, seed)
    for path in stage.iterdir():
        _util.fsync_path(path)
    aside = run_dir / f".pictures-{os.getpid()}-old"
    if final.exists():
        os.rename(final, aside)
    os.rename(stage, final)
    _util.fsync_path(run_dir)
    shutil.rmtree(aside, ignore_errors=True)
    return {name: str(final / pathlib.Path(path).relative_to(stage))
            for name, path in written.items()}


def _run_folder(args, config):
    """(run folder, scratch folder or None): only the chief of a multi-worker run writes --out.

    The other workers work in a scratch copy (of the shared folder when resuming).
    """
    run_dir = pathlib.Path(args.out or datetime.datetime.now().strftime("runs/run-%Y%m%d-%H%M%S"))
    if config.strategy != "multiworker" or runs.is_chief():
        return run_dir, None
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_worker_"))
    if args.resume and run_dir.is_dir():
        shutil.copytree(run_dir, scratch / "run")
    return scratch / "run", scratch


#: --strategy -> the tf.distribute strategy (multiworker reads TF_CONFIG).
STRATEGIES = {"default": tf.distribute.get_strategy, "mirrored": tf.distribute.MirroredStrategy,
              "multiworker": tf.distribute.MultiWorkerMirroredStrategy}


def _labels(config, ds, num_train, y_test):
    """{'train', 'test', 'num_classes'} for a --conditional run, else None.

    Raises:
      UsageError: --conditional on data without training or test labels.
    """
    if not config.conditional:
        return None
    if ds.y_train is None or y_test is None:
        raise UsageError(f"--conditional needs labelled data: {config.data} has no "
                         f"{'training' if ds.y_train is None else 'test'} labels (a .npz with "
                         "y_train and y_test, or y; an image folder with a sub-folder per class)")
    y_train = ds.y_train[:num_train]
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if num_classes < 2 or min(y_train.min(), y_test.min()) < 0:
        raise UsageError(f"--conditional needs labels in 0..C-1 with C >= 2; {config.data} has "
                         f"labels in {int(min(y_train.min(), y_test.min()))}..{num_classes - 1}")
    return {"train": y_train, "test": y_test, "num_classes": num_classes}


def _model(config, x_train, resume_from, num_classes=None):
    """The compiled VAE of `config` (and the epoch to start at, from a resumed run's backup)."""
    keras.mixed_precision.set_global_policy(config.precision)
    with STRATEGIES[config.strategy]().scope():
        try:
            # A posterior that needs its own model (the 'gmvae' head: GaussianMixtureVAE).
            model_class = getattr(names.POSTERIORS.get(config.posterior), "model_class",
                                  None) or VAE
            model = model_class(
                latent_dim=config.latent_dim, event_shape=x_train.shape[1:],
                encoder=config.preset, likelihood=config.likelihood, prior=config.prior,
                posterior=config.posterior,
                objective=objectives.get(config.objective, **config.objective_kwargs()),
                beta=config.kl_beta, warmup_steps=config.warmup_steps,
                gradient_estimator=config.gradient_estimator, seed=config.seed,
                num_classes=num_classes)
        except (ValueError, TypeError) as error:  # the library's rules, e.g. free bits
            raise UsageError(f"cannot build the model: {_util.first_line(error)}") from error
        model.initialize_output_bias(x_train)
        jit = {} if config.jit is None else {"jit_compile": bool(config.jit)}  # (the library's)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      steps_per_execution=_steps_per_execution(config, len(x_train)), **jit)
        return model, runs.restore(model, resume_from) if resume_from else 0


def _steps_per_execution(config, num_train):
    """--steps-per-execution, else the library's default, made exact for fit's batches.

    The default is `training.compile_defaults`' in the strategy's scope (1 under a
    strategy). Under a strategy the batches are `data.training_stream`'s, one stream
    over all epochs: an execution must end where an epoch does, so the value is cut
    to a divisor of the epoch's steps. On one device they are gathered in-step
    (`batches.Batches`), an epoch at a time: any value is exact, and it is capped at
    an epoch's steps (the progress bar's count).
    """
    wanted = int(config.steps_per_execution
                 or training.compile_defaults((), {})["steps_per_execution"])
    steps = max(1, num_train // config.batch_size)
    if config.strategy == "default":
        return min(wanted, steps)
    return max(d for d in range(1, min(wanted, steps) + 1) if steps % d == 0)


def _training_data(config, x_train, start_epoch, binarization, labels):
    """(x, steps_per_epoch) for fit: in-step `batches.Batches` on one device, else a stream."""
    dynamic, y = binarization == "dynamic", labels and labels["train"]
    if config.strategy == "default":
        return batches.Batches(x_train, config.batch_size, config.seed, y=y, dynamic=dynamic,
                               drop_remainder=True), None
    stream, steps = data.training_stream(x_train, config.batch_size, config.seed, start_epoch,
                                         config.epochs, dynamic=dynamic, labels=y)
    return stream, steps


def _fit(model, run_dir, config, args, xs, start_epoch, rows, binarization, labels=None):
    """model.fit over the remaining epochs; returns the epoch a Ctrl-C stopped, or None."""
    x_train, x_test = xs
    stream, steps = _training_data(config, x_train, start_epoch, binarization, labels)
    val = tf.data.Dataset.from_tensor_slices(x_test.astype("float32") if labels is None else (
        x_test.astype("float32"), labels["test"])).batch(config.batch_size)
    flag = _common.InterruptFlag()
    callbacks = runs.callbacks(run_dir, rows, config.seed, flag, args.epoch_delay,
                               config.early_stopping)
    _common.say(f"keras-vae: training {config.objective} ({model.objective!r}) on {config.data} "
                f"({len(x_train)} examples, {binarization} binarisation), {config.epochs} "
                f"epochs of {len(x_train) // config.batch_size} steps -> {run_dir}")
    with flag:
        flag.training = True
        try:
            if start_epoch < config.epochs:
                model.fit(stream, epochs=config.epochs, initial_epoch=start_epoch,
                          steps_per_epoch=steps, validation_data=val, callbacks=callbacks, verbose=args.verbose,
                          shuffle=False)
        except runs.TrainingInterrupted as stop:
            return stop.epoch
        finally:
            flag.training = False
    return None


def _finish(model, run_dir, config, rows, interrupted, started, pictures_of):
    """Saves the model and the final state; pictures of `pictures_of` (x, y); {name: path}."""
    done, model_path = len(rows), run_dir / "model.keras"
    runs.save_model(model, model_path)
    if interrupted is not None:
        runs.write_state(run_dir, status="interrupted", epochs_done=done, epochs=config.epochs)
        raise Interrupted(f"interrupted during epoch {interrupted + 1}: checkpoint saved in "
                          f"{run_dir / runs.BACKUP}; continue with: keras-vae train --out "
                          f"{run_dir} --resume")
    nonfinite = int(model.nonfinite_steps.numpy())
    pictures = {}
    if pictures_of is not None:
        pictures = _pictures(model, run_dir, pictures_of, config.seed)
    runs.write_state(run_dir, status="stopped_nonfinite" if nonfinite else "finished",
                     epochs_done=done, epochs=config.epochs, stopped_early=done < config.epochs,
                     nonfinite_steps=nonfinite, train_seconds=round(time.time() - started, 1))
    shutil.rmtree(run_dir / runs.BACKUP, ignore_errors=True)  # after "finished": never lost
    last = rows[max(rows)] if rows else {}
    summary = (f"; final loss {last.get('loss'):.3f}, val_loss "
               f"{last.get('val_loss', float('nan')):.3f}") if last else ""
    _common.say(f"keras-vae: trained {done}/{config.epochs} epochs in "
                f"{time.time() - started:.0f} s{summary}")
    if nonfinite:
        raise CommandFailed(f"training stopped at a non-finite loss (weights of the last finite "
                            f"step saved in {model_path}); lower --learning-rate or check the data")
    return pictures


__all__ = ["OPTIONS", "STRATEGIES", "register", "run", "train"]
