"""`keras_vae.compile_defaults`: XLA by default from two CPU threads up, or with an accelerator.

The rule comes from bench/ (XLA faster on 2 cores; slower per CPU second on one core
for the IWAE net); these tests check the rule itself, with the thread count and the
device list replaced, and that `VAE.compile` applies it.
"""

import os

import pytest

import keras_vae
from keras_vae import compile_defaults, training
from keras_vae._backend import tf


def _model():
    return keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)


def test_cpu_threads_follows_affinity_environment_and_tf(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 0)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert compile_defaults.cpu_threads() == 4  # the cores this process may use
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    assert compile_defaults.cpu_threads() == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "not a number")
    assert compile_defaults.cpu_threads() == 4
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "16")
    assert compile_defaults.cpu_threads() == 4  # never more than the cores
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 2)
    assert compile_defaults.cpu_threads() == 2  # TF's own setting first
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})  # taskset -c 3
    assert compile_defaults.cpu_threads() == 1


@pytest.mark.parametrize("threads, accelerator, expected", [
    (1, False, True),    # one CPU thread: XLA too (Keras's 'auto' would be off on a CPU)
    (2, False, True),
    (8, False, True),
    (1, True, True),     # an accelerator: XLA, whatever the CPU threads
])
def test_default_jit_compile_by_threads_and_devices(monkeypatch, threads, accelerator,
                                                    expected):
    devices = tf.config.list_physical_devices()
    if accelerator:
        devices = devices + [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
    monkeypatch.setattr(compile_defaults, "cpu_threads", lambda: threads)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda *a: devices)
    model = _model()
    assert compile_defaults.default_jit_compile(model) == expected
    assert compile_defaults.default_jit_compile(model, run_eagerly=True) == "auto"
    assert training.default_jit_compile is compile_defaults.default_jit_compile  # re-export


def test_compile_applies_the_rule_and_an_explicit_value_wins(monkeypatch):
    cpus = [d for d in tf.config.list_physical_devices() if d.device_type == "CPU"]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda *a: cpus)  # Keras's too
    monkeypatch.setattr(compile_defaults, "cpu_threads", lambda: 1)
    model = _model()
    model.compile(optimizer="adam")
    assert model.jit_compile is True  # where Keras's 'auto' would be False (no accelerator)
    assert int(model.steps_per_execution) == compile_defaults.DEFAULT_STEPS_PER_EXECUTION
    model.compile(optimizer="adam", jit_compile=False)
    assert model.jit_compile is False
    model.compile(optimizer="adam", jit_compile="auto")
    assert model.jit_compile is False  # 'auto', which Keras turns off without an accelerator
