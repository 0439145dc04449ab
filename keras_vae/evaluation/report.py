r"""The report of `keras_vae.evaluation`: every measure of a model, written as one JSON file.

`evaluate_model` runs the measures of `measures` with one seed, checks for posterior
collapse (`check_posterior_collapse`), and records the protocol (k, seeds, batch and
chunk sizes, the data's protocol, the model config) and the package versions.
"""

import datetime
import pathlib
import time
import warnings

import numpy as np

from keras_vae import _util
from keras_vae.evaluation.measures import active_units, bounds, gradient_snr, log_likelihood
from keras_vae.evaluation.results import (
    ACTIVE_UNIT_THRESHOLD, ActiveUnits, EffectiveSampleSize, LogLikelihood, bits_per_dim,
)

#: Mean KL(q(z|x) || p(z)) below this many nats counts as posterior collapse.
COLLAPSE_KL_THRESHOLD = 0.01


class PosteriorCollapseWarning(UserWarning):
    """No latent unit is active, or the KL term is about 0: q(z|x) ignores x."""


def check_posterior_collapse(active, mean_kl, kl_threshold=COLLAPSE_KL_THRESHOLD):
    """Warns (PosteriorCollapseWarning) if no unit is active or the mean KL is about 0.

    Args:
      active: an `ActiveUnits` (or the count of active units).
      mean_kl: the mean KL(q(z|x) || p(z)) over the data, in nats.

    Returns:
      The warning's message, or None when the posterior is not collapsed.
    """
    count = active.count if isinstance(active, ActiveUnits) else int(active)
    reasons = []
    if count == 0:
        reasons.append("no latent unit is active (Cov_x(E_q[z_u|x]) <= "
                       f"{getattr(active, 'threshold', ACTIVE_UNIT_THRESHOLD)} for every u)")
    if mean_kl is not None and float(mean_kl) < kl_threshold:
        reasons.append(f"the mean KL(q(z|x) || p(z)) is {float(mean_kl):.3g} nats "
                       f"(< {kl_threshold})")
    if not reasons:
        return None
    message = ("keras_vae: posterior collapse: " + " and ".join(reasons) + ". The encoder "
               "ignores x; try KL warm-up (warmup_steps), free bits, a weaker decoder, or "
               "IWAE.")
    warnings.warn(message, PosteriorCollapseWarning, stacklevel=2)
    return message


def evaluate_model(model, x, k=5000, seed=0, batch_size=20, chunk_size=500, bound_k=None,
                   snr_batch_size=20, snr_estimates=32, report_path=None, protocol=None,
                   include_per_example=False, verbose=1, labels=None, uses=None):
    r"""Measures a model on a data set and writes a JSON report of every figure.

    Computes: the importance-sampled log-likelihood with k samples (mean,
    standard error, NLL) and the ESS of its weights; the bounds ELBO, IWAE_bound_k,
    KL, reconstruction; the active units; the gradient SNR of encoder and
    decoder under the model's objective on the first `snr_batch_size` examples;
    and a posterior-collapse check (a `PosteriorCollapseWarning` when no unit is
    active or the KL is about 0). With labels: per-class log p(x|y) for a conditional
    model, and (`uses`) clustering and the linear probe (`uses_report`).

    Args:
      model: a `keras_vae.VAE`.
      x: the evaluation images [N, *event_shape] (e.g. the binarised test set).
      k: importance samples for the log-likelihood (Burda et al.: 5000).
      seed: int seed of every draw.
      batch_size, chunk_size: see `log_likelihood`.
      bound_k: samples for the bounds; defaults to the objective's (at least 1).
      snr_batch_size, snr_estimates: the SNR's batch and number of estimates
        (0 estimates skips it).
      report_path: where to write the JSON report (None: not written).
      protocol: a dict describing the data (e.g. `keras_vae.data.load(...).protocol`:
        binarisation seed, split); stored in the report as is.
      include_per_example: also store per-example log-likelihoods and ESS.
      verbose: 0 silent, 1 progress bars and a line per stage.
      labels: x's labels; a conditional model needs them (log p(x|y), per class).
      uses: None, or `uses_report`'s keywords ({'x_train', 'y_train'}): adds its keys.

    Returns:
      The report as a dict (what the JSON file holds), with the keys
      'log_likelihood', 'bounds', 'effective_sample_size', 'active_units',
      'gradient_snr' (None when skipped), 'posterior_collapse' ({'collapsed',
      'message', 'active_units', 'mean_kl', 'kl_threshold'}), 'protocol' (k, seeds,
      batch and chunk sizes, the data protocol, the model config), 'versions',
      'created', 'elapsed_s' (and 'per_example' on request).

    Raises:
      ValueError: data that do not fit the model, or bad k / sizes.
    """
    x = np.asarray(x)
    model.validate_inputs(x, "x")
    started = time.time()
    say = print if verbose else (lambda *args, **kwargs: None)
    bound_k = int(bound_k or model.objective.num_samples)
    settings = {"k": int(k), "bound_k": bound_k, "seed": int(seed),
                "batch_size": int(batch_size), "chunk_size": int(chunk_size)}
    figures, report = _measure_and_report(model, x, settings, (snr_batch_size, snr_estimates),
                                          protocol, labels, verbose, say)
    if uses is not None and labels is not None:
        report.update(uses_report(model, x, labels, say=say, **uses))
    ll, au, ess = figures["log_likelihood"], figures["active_units"], figures["ess"]
    if include_per_example:
        report["per_example"] = {"log_likelihood": ll.values.tolist(), "ess": ll.ess.tolist()}
    report["elapsed_s"] = round(time.time() - started, 3)
    _write(report, report_path, say)
    say(f"keras_vae.evaluation: NLL {ll.nll:.3f} +- {ll.standard_error:.3f} nats "
        f"(k={k}), active units {au.count}/{len(au.variances)}, ESS {ess.mean:.1f}/{k}")
    return report


def _write(report, report_path, say):
    """Writes the report atomically (a crash leaves the old report or none)."""
    if report_path is not None:
        path = pathlib.Path(report_path)
        _util.atomic_write_json(path, report)
        say(f"keras_vae.evaluation: report written to {path}")


def _measure_and_report(model, x, settings, snr, protocol, labels, verbose, say):
    """(figures, report): a conditional model is measured on (x, labels), without the
    gradient SNR, and its report adds 'per_class_log_likelihood'."""
    conditional = bool(getattr(model, "is_conditional", False))
    if conditional and labels is None:
        raise ValueError("a conditional model is evaluated on (x, labels): pass labels.")
    label_kwargs = {"labels": labels} if conditional else {}
    snr_batch_size, snr_estimates = (0, 0) if conditional else snr
    figures = _measure(model, x, settings, snr_batch_size, snr_estimates, verbose, say,
                       label_kwargs)
    report = _report(model, x, figures, settings, snr_batch_size, snr_estimates, protocol)
    if conditional:
        report["per_class_log_likelihood"] = per_class(figures["log_likelihood"].values, labels)
    return figures, report


def _measure(model, x, settings, snr_batch_size, snr_estimates, verbose, say, label_kwargs):
    """The measures of `evaluate_model`, as a dict of results (and the collapse message).

    `label_kwargs` is {'labels': ...} for a conditional model (no gradient SNR then)."""
    k, seed = settings["k"], settings["seed"]
    batching = {"batch_size": settings["batch_size"], "chunk_size": settings["chunk_size"]}
    say(f"keras_vae.evaluation: log p(x) with k={k} on {len(x)} examples")
    ll = log_likelihood(model, x, k=k, seed=seed, verbose=verbose, **batching, **label_kwargs)
    say(f"keras_vae.evaluation: bounds with k={settings['bound_k']}")
    bnds = bounds(model, x, k=settings["bound_k"], seed=seed + 1, verbose=verbose, **batching,
                  **label_kwargs)
    au = _active_units(model, x, label_kwargs.get("labels"))
    snr = None
    if snr_estimates:
        say(f"keras_vae.evaluation: gradient SNR over {snr_estimates} estimates")
        snr = gradient_snr(model, x[:snr_batch_size], num_estimates=snr_estimates,
                           seed=seed + 2, verbose=verbose)
    mean_kl = float(np.mean(bnds.kl))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PosteriorCollapseWarning)
        collapse = check_posterior_collapse(au, mean_kl)
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=4)  # evaluate_model's caller
    return {"log_likelihood": ll, "bounds": bnds, "active_units": au, "gradient_snr": snr,
            "ess": EffectiveSampleSize(values=ll.ess, k=ll.k), "mean_kl": mean_kl,
            "collapse": collapse}


def _report(model, x, figures, settings, snr_batch_size, snr_estimates, protocol):
    """The report dict of `evaluate_model` ('elapsed_s' still None)."""
    au, snr = figures["active_units"], figures["gradient_snr"]
    return {
        "log_likelihood": _with_bits_per_dim(model, figures["log_likelihood"].summary()),
        "bounds": figures["bounds"].summary(),
        "effective_sample_size": figures["ess"].summary(),
        "active_units": au.summary(),
        "gradient_snr": None if snr is None else snr.summary(),
        "posterior_collapse": {"collapsed": figures["collapse"] is not None,
                               "message": figures["collapse"], "active_units": au.count,
                               "mean_kl": figures["mean_kl"],
                               "kl_threshold": COLLAPSE_KL_THRESHOLD},
        "protocol": {
            **settings,
            "num_examples": int(len(x)),
            "snr_batch_size": int(min(snr_batch_size, len(x))) if snr else None,
            "snr_estimates": int(snr_estimates) if snr else None,
            "active_unit_threshold": au.threshold,
            "data": dict(protocol or {}),
            "model_config": _util.jsonable(model.get_config()),
        },
        "versions": _util.versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": None,
    }


def _with_bits_per_dim(model, summary):
    """The log-likelihood summary, with 'bits_per_dim' and 'num_dims' for a discrete 8-bit model.

    bits/dim = NLL / (D ln 2) (`results.bits_per_dim`), for a likelihood over
    integers (`integer_valued`, e.g. 'discretized_logistic'), where it is the usual unit.
    """
    if not getattr(model.likelihood, "integer_valued", False):
        return summary
    num_dims = int(np.prod(model.event_shape))
    return {**summary, "bits_per_dim": bits_per_dim(summary["nll"], num_dims),
            "num_dims": num_dims}



def _active_units(model, x, labels):
    """`active_units`, through q(z|x, y) for a conditional model."""
    if labels is None:
        return active_units(model, x)
    from keras_vae import traversals  # noqa: PLC0415 - the conditional encoder means

    return traversals.activity(model, x, labels)


def per_class(values, labels):
    """{label: {'mean', 'standard_error', 'num_examples'}} of per-example values (nats).

    Integer labels are grouped by value; condition vectors (rows) by their argmax.
    """
    values, labels = np.asarray(values, "float64"), np.asarray(labels)
    keys = labels if labels.ndim == 1 else np.argmax(labels.reshape(len(labels), -1), axis=1)
    out = {}
    for key in np.unique(keys):
        chosen = LogLikelihood(values=values[keys == key], ess=np.ones(1), k=1)
        out[str(key.item())] = {"mean": chosen.mean, "standard_error": chosen.standard_error,
                                "num_examples": int(np.sum(keys == key))}
    return out


def uses_report(model, x, labels, x_train=None, y_train=None, seed=0, say=None):
    r"""What a VAE is used for, measured: clusters and linear features.

    'clustering' (a model whose prior has mixture components): the mixture's
    clusters of x scored against `labels` (`clustering.clustering`: accuracy by the
    Hungarian matching, NMI, ARI) beside k-means on the pixels and on the model's
    latent means. 'linear_probe' (an unconditional model, when x_train and y_train
    are given): `probe.linear_probe` fitted on (x_train, y_train), tested on
    (x, labels). Each is None, with a 'reason', when it does not apply.

    Returns:
      {'clustering': {...} or None, 'linear_probe': {...} or None}.
    """
    from keras_vae.evaluation import clustering, probe  # noqa: PLC0415 - optional measures

    say = say or (lambda *args, **kwargs: None)
    out = {"clustering": None, "linear_probe": None}
    try:
        clustering.mixture_components(model)
    except ValueError as error:
        out["clustering_skipped"] = _util.first_line(error)
    else:
        say(f"keras_vae.evaluation: clustering {len(x)} examples (and k-means baselines)")
        out["clustering"] = {
            "model": clustering.clustering(model, x, labels).summary(),
            "kmeans_pixels": clustering.kmeans_pixels(x, labels, seed=seed).summary(),
            "kmeans_latent": clustering.kmeans_latent(model, x, labels, seed=seed).summary()}
    if getattr(model, "is_conditional", False):
        out["linear_probe_skipped"] = "the model is conditional: its latent is given the label"
    elif x_train is None or y_train is None:
        out["linear_probe_skipped"] = "no labelled training examples"
    else:
        say(f"keras_vae.evaluation: linear probe, {len(x_train)} training examples")
        out["linear_probe"] = probe.linear_probe(model, x_train, y_train, x, labels).summary()
    return out


__all__ = ["check_posterior_collapse", "evaluate_model", "uses_report", "per_class",
           "PosteriorCollapseWarning", "COLLAPSE_KL_THRESHOLD"]
