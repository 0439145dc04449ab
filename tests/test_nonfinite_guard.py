"""The non-finite guard (`keras_vae.guard`): a skipped step moves no weight and no
optimizer state, bit for bit, on the masked-writes path and on the tf.cond path alike."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import guard, training

SHAPES = [(3, 4), (4,), (2, 2, 2)]
#: The gradients of five steps: the second and fourth are not finite.
BAD_STEPS = {1: np.nan, 3: np.inf}

OPTIMIZERS = {
    "adam_amsgrad": lambda: keras.optimizers.Adam(1e-2, amsgrad=True),
    "sgd_nesterov": lambda: keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: keras.optimizers.RMSprop(1e-2, momentum=0.5, centered=True),
    "adamax": lambda: keras.optimizers.Adamax(1e-2),
    "nadam": lambda: keras.optimizers.Nadam(1e-2),
    "adagrad": lambda: keras.optimizers.Adagrad(1e-2),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "lion": lambda: keras.optimizers.Lion(1e-3),
    "lamb": lambda: keras.optimizers.Lamb(1e-2),
    "ftrl": lambda: keras.optimizers.Ftrl(1e-2, l1_regularization_strength=1e-3),
    "adafactor": lambda: keras.optimizers.Adafactor(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),  # the cond path
    "adam_schedule": lambda: keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)),
}


def _gradients():
    rng = np.random.default_rng(0)
    steps = []
    for step in range(5):
        grads = [rng.standard_normal(s).astype("float32") for s in SHAPES]
        if step in BAD_STEPS:
            grads[step % len(SHAPES)].flat[1] = BAD_STEPS[step]
        steps.append(grads)
    return steps


def _variables():
    rng = np.random.default_rng(1)
    return [keras.Variable(rng.standard_normal(s).astype("float32"), name=f"w{i}")
            for i, s in enumerate(SHAPES)]


def _state(optimizer, variables):
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


def _guarded_run(make, jit_compile, halt_at_first=False, skip_bad=False):
    """`apply_if_finite` on the five steps (or, skip_bad, on the three finite ones only)."""
    optimizer, variables = make(), _variables()
    optimizer.build(variables)
    counter = tf.Variable(tf.constant(0, "int64"))
    halt = tf.Variable(tf.constant(-1, "int64")) if halt_at_first else None

    @tf.function(jit_compile=jit_compile)
    def step(grads):
        loss = tf.add_n([tf.reduce_sum(g) for g in grads])
        guard.apply_if_finite(optimizer, counter, loss, grads, variables, halt)

    for i, grads in enumerate(_gradients()):
        if not (skip_bad and i in BAD_STEPS):
            step([tf.constant(g) for g in grads])
    return optimizer, variables, int(counter.numpy())


def _plain_run(make, jit_compile):
    """Plain `optimizer.apply`, compiled alike, on the three finite steps."""
    optimizer, variables = make(), _variables()
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables), jit_compile=jit_compile)
    for i, grads in enumerate(_gradients()):
        if i not in BAD_STEPS:
            apply([tf.constant(g) for g in grads])
    return optimizer, variables


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_skipped_steps_leave_weights_and_optimizer_state_bit_for_bit(name, jit_compile):
    make = OPTIMIZERS[name]
    optimizer, variables, skipped = _guarded_run(make, jit_compile)
    clean, clean_variables, none_skipped = _guarded_run(make, jit_compile, skip_bad=True)
    assert (skipped, none_skipped) == (2, 0)
    assert int(optimizer.iterations.numpy()) == int(clean.iterations.numpy()) == 3
    for got, want in zip(_state(optimizer, variables), _state(clean, clean_variables)):
        np.testing.assert_array_equal(got, want)
    # The guarded update is the optimizer's own: exact in graph mode; under XLA, whose
    # fusion differs with the selects, within float32 round-off.
    plain, plain_variables = _plain_run(make, jit_compile)
    for got, want in zip(_state(optimizer, variables), _state(plain, plain_variables)):
        if jit_compile:
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_the_halt_freezes_every_step_after_the_first_non_finite_one(jit_compile):
    make = OPTIMIZERS["adam_amsgrad"]
    optimizer, variables, skipped = _guarded_run(make, jit_compile, halt_at_first=True)
    assert skipped == 2  # steps 1 and 3 counted; steps 2 and 4 frozen by the halt
    assert int(optimizer.iterations.numpy()) == 1
    one, one_variables = make(), _variables()
    one.build(one_variables)
    counter = tf.Variable(tf.constant(0, "int64"))
    tf.function(lambda g: guard.apply_if_finite(one, counter, tf.constant(0.0), g,
                                                   one_variables),
                jit_compile=jit_compile)([tf.constant(g) for g in _gradients()[0]])
    for got, want in zip(_state(optimizer, variables), _state(one, one_variables)):
        np.testing.assert_array_equal(got, want)


def test_masked_writes_cover_only_updates_made_through_the_optimizers_assign_methods():
    variables = _variables()
    grads = [tf.zeros(s) for s in SHAPES]
    covered = {name: guard.masked_writes_cover(make(), grads, variables)
               for name, make in OPTIMIZERS.items()}
    assert covered.pop("adamw") is False  # weight decay writes past `assign`
    assert all(covered.values()), covered
    assert not guard.masked_writes_cover(keras.optimizers.Adam(use_ema=True), grads, variables)
    assert not guard.masked_writes_cover(
        keras.optimizers.Adam(gradient_accumulation_steps=2), grads, variables)

    class OwnAdam(keras.optimizers.Adam):  # a subclass may write its state any way
        pass

    assert not guard.masked_writes_cover(OwnAdam(), grads, variables)
    constrained = keras.Variable(np.ones(3, "float32"))
    constrained.constraint = keras.constraints.NonNeg()
    assert not guard.masked_writes_cover(keras.optimizers.Adam(), [tf.zeros(3)], [constrained])
    sparse = tf.IndexedSlices(tf.zeros((1, 4)), tf.constant([0]), tf.constant([3, 4]))
    assert not guard.masked_writes_cover(keras.optimizers.Adam(), [sparse], variables[:1])
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():  # one replica: covered
        assert guard.masked_writes_cover(keras.optimizers.Adam(), grads, variables)


def test_masked_writes_restore_the_optimizers_own_methods():
    optimizer = keras.optimizers.Adam()
    with guard.masked_writes(optimizer, tf.constant(False)):
        assert "assign" in vars(optimizer)
    assert not {"assign", "assign_add", "assign_sub"} & set(vars(optimizer))
    with pytest.raises(RuntimeError):
        with guard.masked_writes(optimizer, tf.constant(False)):
            raise RuntimeError("inside")
    assert not {"assign", "assign_add", "assign_sub"} & set(vars(optimizer))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_bad_entry_and_passes_huge_finite_ones(value):
    grads = [tf.fill([5, 7], 3e38), tf.ones([4])]
    assert bool(guard.all_finite(tf.constant(1.0), grads))
    assert bool(guard.all_finite(tf.constant(1.0), [grads[0], None, grads[1]]))
    bad = np.ones((5, 7), "float32")
    bad[4, 6] = value
    assert not bool(guard.all_finite(tf.constant(1.0), [tf.constant(bad), grads[1]]))
    assert not bool(guard.all_finite(tf.constant(value, "float32"), grads))
    sparse = tf.IndexedSlices(tf.constant(bad), tf.range(5), tf.constant([9, 7]))
    assert not bool(guard.all_finite(tf.constant(1.0), [sparse, None]))
    assert bool(tf.function(guard.all_finite, jit_compile=True)(tf.constant(1.0), grads))


def test_in_xla_compilation_sees_jit_compile_also_of_a_function_called_inside_another():
    seen = {}

    def probe(name):
        seen[name] = guard.in_xla_compilation()
        return tf.constant(0.0)

    tf.function(lambda: probe("xla"), jit_compile=True)()
    tf.function(lambda: probe("graph"), jit_compile=False)()
    inner = tf.function(lambda: probe("inner"), jit_compile=True)
    tf.function(lambda: inner())()  # Keras's multi-step loop around its compiled step
    probe("eager")
    assert seen == {"xla": True, "graph": False, "inner": True, "eager": False}


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_the_train_step_takes_the_masked_path_only_under_xla(jit_compile, monkeypatch):
    taken = []
    real = guard.masked_writes

    def spy(optimizer, keep):
        taken.append(True)
        return real(optimizer, keep)

    monkeypatch.setattr(guard, "masked_writes", spy)
    x = (np.random.default_rng(0).random((16, 4, 4, 1)) < 0.3).astype("float32")
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)
    model.compile(optimizer="adam", jit_compile=jit_compile, steps_per_execution=2)
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert bool(taken) == jit_compile
    assert int(model.optimizer.iterations.numpy()) == 2


def test_the_guard_is_importable_from_training_as_before():
    for name in guard.__all__:
        assert getattr(training, name) is getattr(guard, name), name
