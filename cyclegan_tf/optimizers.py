"""The paper's optimisation: Adam, at a constant learning rate that then decays linearly to zero."""
from __future__ import annotations

import keras
import tensorflow as tf

from cyclegan_tf.config import Config


@keras.saving.register_keras_serializable("cyclegan_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to zero over the last decay_steps (the paper's).

    A pure function of the step and of three settings saved in the run's config.json (see
    for_config), so a resumed run gets the rate it had. Resuming with another --max_steps
    (or --decay_steps, --learning_rate) re-plans the schedule at the resume step
    (config.continue_schedule) without a jump: a run still in its constant phase starts its decay
    at new max_steps - decay_steps (decay_steps = new max_steps / 2 unless given; never before the
    resume step); a decaying run goes on from the rate it has at the resume step, linearly to 0 at
    the new max_steps (a finished run's rate is 0: give --learning_rate to restart from one).
    """

    def __init__(self, initial_learning_rate: float, total_steps: int, decay_steps: int):
        self.initial_learning_rate = initial_learning_rate  # the constant phase's rate
        self.total_steps = total_steps
        self.decay_steps = decay_steps

    @classmethod
    def for_config(cls, config: Config) -> "LinearDecay":
        """The run's schedule: the same rates as config.learning_rate_at."""
        start_lr = config.learning_rate if config.decay_start_lr is None else config.decay_start_lr
        return cls(start_lr, config.max_steps, config.decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay_start = float(self.total_steps - self.decay_steps)
        progress = tf.clip_by_value((step - decay_start) / max(self.decay_steps, 1), 0.0, 1.0)
        return self.initial_learning_rate * (1.0 - progress)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "total_steps": self.total_steps, "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable("cyclegan_tf")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam (same slots, same checkpoints, same arithmetic), each variable updated by TF's
    fused ResourceApplyAdam kernel, as tf.keras 2 did.

    Keras 3 builds about twenty small ops per variable; with ~130 variables in a CycleGAN that is
    a quarter of the training step's tracing and a larger graph to optimise: one op per variable
    cut the first step at 64 px by ~2.5 s on a 2-core CPU (benchmarks/README.md). TF has the kernel
    for CPU, GPU and XLA.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:  # no fused kernel for it
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        # variable is the tf.Variable (under tf.distribute: this device's copy, as are the
        # slots' handles inside the strategy's update call).
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, local_step), beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))
