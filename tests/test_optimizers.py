"""The optimiser: FusedAdam must be Keras' Adam, only faster to trace."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf.optimizers import FusedAdam, LinearDecay


def _train(optimizer_class, steps: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.standard_normal(shape).astype(np.float32))
                 for shape in ((3, 3, 4, 8), (8,))]
    optimizer = optimizer_class(LinearDecay(0.01, total_steps=steps, decay_steps=3), beta_1=0.5)
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for _ in range(steps):
        step([tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in variables])
    slots = [s.numpy() for s in optimizer.variables if len(s.shape) > 0]
    return [v.numpy() for v in variables] + slots


def test_fused_adam_matches_keras_adam_and_its_slots():
    fused, reference = _train(FusedAdam), _train(keras.optimizers.Adam)
    assert len(fused) == len(reference) == 6  # 2 variables, their momentums and velocities
    start = _train(FusedAdam, steps=0)
    for a, b, before in zip(fused, reference, start):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert not np.allclose(a, before)  # every tensor really moved


def test_linear_decay_is_constant_then_linear_to_zero():
    schedule = LinearDecay(2e-4, total_steps=100, decay_steps=40)
    lrs = [float(schedule(step)) for step in (0, 59, 60, 80, 100, 120)]
    np.testing.assert_allclose(lrs, [2e-4, 2e-4, 2e-4, 1e-4, 0.0, 0.0], atol=1e-10)
