"""The history of generated images (Shrivastava et al.), kept in TF variables: it lives inside the
traced training step (no host round trip) and is saved and restored with the checkpoint."""
from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    """Returns, for each generated image, either itself or (half the time, once the pool is full)
    an older one from the pool, which the new image then replaces.

    Under tf.distribute each replica keeps a pool of its own (sync-on-read variables); the
    checkpoint stores the first replica's, which every replica gets back on restore.
    """

    def __init__(self, pool_size: int, image_shape: tuple[int, int, int], name: str | None = None):
        super().__init__(name=name)
        self.pool_size = pool_size
        if pool_size > 0:
            local = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.images = tf.Variable(tf.zeros([pool_size, *image_shape]), name="images", **local)
            self.count = tf.Variable(0, dtype=tf.int32, name="count", **local)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        if self.pool_size == 0:
            return images
        return tf.stack([self._query(images[i]) for i in range(images.shape[0])])

    def _query(self, image: tf.Tensor) -> tf.Tensor:
        count = self.count.read_value()

        def store() -> tf.Tensor:
            self._put(count, image)
            self.count.assign_add(1)
            return image

        def swap() -> tf.Tensor:
            index = tf.random.uniform([], 0, self.pool_size, dtype=tf.int32)
            old = tf.gather(self.images, index)
            with tf.control_dependencies([old]):
                self._put(index, image)
            return old

        def maybe_swap() -> tf.Tensor:  # the pool is written only when it changes
            return tf.cond(tf.random.uniform([]) < 0.5, swap, lambda: image)

        return tf.cond(count < self.pool_size, store, maybe_swap)

    def _put(self, index: tf.Tensor, image: tf.Tensor) -> None:
        # Sync-on-read (per-replica) variables have no scatter update: assign the whole pool.
        # It is one copy of pool_size images per query, small next to a training step.
        self.images.assign(tf.tensor_scatter_nd_update(self.images, [[index]], image[tf.newaxis]))
