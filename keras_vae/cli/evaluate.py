r"""`keras-vae evaluate RUN_DIR`: log-likelihood, bounds, active units, ESS -> metrics.json.

```none
keras-vae evaluate runs/a --k 1000                 # -> runs/a/metrics.json and a table
keras-vae evaluate runs/a --k 5000 --examples 1000 --out nll.json
keras-vae evaluate runs/a --estimator ais --ais-steps 1000 --examples 100   # + 'ais'
```

The figures are `keras_vae.evaluation.evaluate_model`'s, on the run's test set. With
labels: clustering (a mixture prior), the linear probe (fitted on the first
`--probe-examples` training examples, binarised like the test set), and for a
conditional model log p(x|y) per class (`evaluation.uses_report`).
"""

import pathlib

from keras_vae import _util, data, evaluation, runs
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_OK
from keras_vae.cli._options import Option, nonnegative_int, positive_int

OPTIONS = (
    _options.run_dir_option(),
    Option("k", ("--k",), type=positive_int, default=1000,
           help="importance samples per example (Burda et al. use 5000)"),
    Option("examples", ("--examples",), type=positive_int, metavar="N",
           help="evaluate the first N test examples", default_help="all"),
    Option("batch_size", ("--batch-size",), type=positive_int, default=20,
           help="examples per batch"),
    Option("snr_estimates", ("--snr-estimates",), type=nonnegative_int, default=32,
           metavar="N", help="gradient estimates for the gradient SNR; 0 skips it"),
    Option("seed", ("--seed",), type=nonnegative_int, default=0, help="seed of the draws"),
    Option("probe_examples", ("--probe-examples",), type=nonnegative_int, default=5000,
           metavar="N", help="labelled training examples of the linear probe; 0 skips it"),
    Option("out", ("--out",), metavar="FILE", help="the JSON report",
           default_help="RUN_DIR/metrics.json"),
) + _options.COMMON

#: --estimator: 'is' (importance sampling with q, --k samples) or 'ais' (also annealed
#: importance sampling from the prior with HMC, keras_vae.evaluation.ais_log_likelihood).
ESTIMATORS = ("is", "ais")
ESTIMATOR_OPTIONS = (
    Option("estimator", ("--estimator",), choices=ESTIMATORS, default="is",
           help="is: importance sampling with q(z|x) (--k samples); ais: also annealed "
                "importance sampling (Wu et al. 2017), under 'ais' in the report"),
    Option("ais_steps", ("--ais-steps",), type=positive_int, default=1000, metavar="T",
           help="AIS: intermediate distributions (sigmoid schedule)"),
    Option("ais_chains", ("--ais-chains",), type=positive_int, default=16, metavar="C",
           help="AIS: chains per example"),
    Option("ais_leapfrog", ("--ais-leapfrog",), type=positive_int, default=10, metavar="L",
           help="AIS: leapfrog steps per HMC transition"),
)
OPTIONS = OPTIONS + ESTIMATOR_OPTIONS


def register(subparsers):
    _options.add_command(subparsers, "evaluate", OPTIONS, run,
                         help="log-likelihood, bounds, active units, ESS -> metrics.json")


def run(args):
    run_dir = _common.require_run_dir(args)
    report, out = evaluate_run(run_dir, k=args.k, examples=args.examples,
                               batch_size=args.batch_size, snr_estimates=args.snr_estimates,
                               seed=args.seed, out=args.out,
                               probe_examples=args.probe_examples)
    if getattr(args, "estimator", "is") == "ais":
        report = add_ais(report, out, run_dir, args)
    _common.print_table(metrics_table(report), title=f"keras-vae: metrics of {run_dir} (-> {out})")
    return EXIT_OK


def evaluate_run(run_dir, k=1000, examples=None, batch_size=20, snr_estimates=32, seed=0,
                 out=None, model=None, config=None, probe_examples=0):
    """Evaluates a run's model on its test set; returns (report, path of the JSON report).

    `model` and `config` default to the run folder's (`runs.load_run_model`); the
    linear probe is fitted on `probe_examples` training examples (0, the default: no probe).
    """
    if model is None:
        model, config = runs.load_run_model(run_dir)
    x, y, uses = _labelled_data(config, examples, probe_examples)
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "metrics.json"
    _common.say(f"keras-vae: evaluating {run_dir} on {len(x)} test examples with k={k}")
    report = evaluation.evaluate_model(
        model, x, k=k, seed=seed, batch_size=batch_size, snr_estimates=snr_estimates,
        report_path=out, protocol=config.get("data"), verbose=1, labels=y, uses=uses)
    return report, out


def add_ais(report, out, run_dir, args):
    """Adds AIS (`evaluation.ais_log_likelihood`, with its protocol) to the report at `out`."""
    model, config = runs.load_run_model(run_dir)
    x, _ = _common.eval_data(config, args.examples)
    _common.say(f"keras-vae: AIS with {args.ais_steps} steps and {args.ais_chains} chains on "
                f"{len(x)} examples")
    ais = evaluation.ais_log_likelihood(model, x, num_steps=args.ais_steps,
                                        num_chains=args.ais_chains,
                                        leapfrog_steps=args.ais_leapfrog,
                                        batch_size=args.batch_size, seed=args.seed)
    report = {**report, "ais": ais.summary()}
    report["log_likelihood"] = {**(report.get("log_likelihood") or {}), "estimator": "is"}
    _util.atomic_write_json(pathlib.Path(out), report)
    return report


def _ais_rows(report):
    ais = report.get("ais") or {}
    if not ais:
        return []
    steps, chains = ais["protocol"]["num_steps"], ais["protocol"]["num_chains"]
    return [(f"log p(x), AIS T={steps} C={chains}",
             f"{ais['mean']:.3f} +- {ais['standard_error']:.3f} nats"),
            ("NLL (AIS)", f"{ais['nll']:.3f} nats")]


def _labelled_data(config, examples, probe_examples):
    """(x_test, y_test, the `uses` of evaluate_model or None) of a run's config.

    The probe's training images are the first `probe_examples` training examples,
    binarised once (fixed seed) when the run binarises its test set.
    """
    train = {**_options.TrainConfig.from_dict(config.get("train") or {}).to_dict(),
             "test_examples": None}
    ds, x_train, x, y, used = _common.load_data(train, examples)
    if y is None:
        return x, None, None
    uses = {"seed": 0}
    if probe_examples and ds.y_train is not None:
        x_train = x_train[:probe_examples]
        if used != "none":
            x_train = data.binarize(x_train)
        uses.update(x_train=x_train, y_train=ds.y_train[:len(x_train)])
    return x, y, uses


def metrics_table(report):
    """The evaluation report as (name, value) rows for the printed table."""
    rows = []
    ll = report.get("log_likelihood") or {}
    if ll:
        rows.append((f"log p(x), k={ll.get('k')}",
                     f"{ll.get('mean'):.3f} +- {ll.get('standard_error', float('nan')):.3f} nats"))
        rows.append(("NLL", f"{ll.get('nll'):.3f} nats"))
        if ll.get("bits_per_dim") is not None:  # a discrete 8-bit likelihood
            rows.append(("bits/dim", f"{ll['bits_per_dim']:.4f} (NLL / (D ln 2), "
                                     f"D={ll['num_dims']})"))
    rows.extend(_ais_rows(report))
    for key, value in (report.get("bounds") or {}).items():
        if key not in ("k", "num_examples") and not key.endswith("_standard_error"):
            rows.append((key if key != "elbo" else "ELBO", f"{value:.3f} nats"))
    au = report.get("active_units") or {}
    if au:
        rows.append(("active units", f"{au.get('count')}/{au.get('latent_dim')} "
                                     f"(Var > {au.get('threshold')})"))
    ess = report.get("effective_sample_size") or {}
    if ess:
        rows.append(("ESS", f"{ess.get('mean'):.1f} of k={ess.get('k')} "
                            f"(min {ess.get('min'):.1f})"))
    snr = report.get("gradient_snr")
    if snr:
        rows.append(("gradient SNR", f"encoder {snr.get('encoder_mean'):.3g}, "
                                     f"decoder {snr.get('decoder_mean'):.3g}"))
    collapse = report.get("posterior_collapse")
    if isinstance(collapse, dict) and collapse.get("collapsed"):
        rows.append(("posterior collapse", "yes"))
    return rows + uses_rows(report)


def uses_rows(report):
    """The rows of clustering, the linear probe and per-class log p(x|y), when present."""
    rows = []
    clusters = report.get("clustering")
    if clusters:
        model, pixels, latent = (clusters.get(key) or {} for key in
                                 ("model", "kmeans_pixels", "kmeans_latent"))
        nan = float("nan")
        rows.append(("cluster accuracy", f"{model.get('accuracy', nan):.1%} (NMI "
                     f"{model.get('nmi', nan):.3f}, ARI {model.get('ari', nan):.3f}; k-means: "
                     f"pixels {pixels.get('accuracy', nan):.1%}, latent "
                     f"{latent.get('accuracy', nan):.1%})"))
    probe = report.get("linear_probe")
    if probe:
        rows.append(("linear probe", f"{probe['latent_accuracy']:.1%} (PCA-{probe['latent_dim']}"
                     f" {probe['pca_accuracy']:.1%}, pixels {probe['pixel_accuracy']:.1%}, "
                     f"chance {probe['chance']:.1%})"))
    for label, figures in (report.get("per_class_log_likelihood") or {}).items():
        rows.append((f"log p(x|y={label})", f"{figures['mean']:.3f} +- "
                     f"{figures['standard_error']:.3f} nats ({figures['num_examples']})"))
    return rows


__all__ = ["OPTIONS", "ESTIMATORS", "ESTIMATOR_OPTIONS", "register", "run", "evaluate_run",
           "add_ais", "metrics_table", "uses_rows"]
