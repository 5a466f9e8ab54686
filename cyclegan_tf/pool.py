"""The history of generated images (Shrivastava et al.), kept in TF variables: it lives inside the
traced training step (no host round trip) and is saved and restored with the checkpoint."""
from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    """Returns, for each generated image, either itself or (half the time, once the pool is full)
    an older one from the pool, which the new image then replaces.

    Under tf.distribute each replica keeps a pool of its own (sync-on-read variables); the
    checkpoint stores the first replica's, which every replica gets back on restore.

    The random choices are stateless, drawn from (seed, replica, count), count being the images
    queried so far, which the checkpoint holds: a resumed run makes the choices the uninterrupted
    run would have made.
    """

    def __init__(self, pool_size: int, image_shape: tuple[int, int, int], seed: int = 0,
                 name: str | None = None):
        super().__init__(name=name)
        self.pool_size = pool_size
        self.seed = seed
        if pool_size > 0:
            local = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.images = tf.Variable(tf.zeros([pool_size, *image_shape]), name="images", **local)
            # Images queried so far; the pool is full once it reaches pool_size. (Older checkpoints
            # stopped counting at pool_size: the same "full", and a fresh random stream.)
            self.count = tf.Variable(0, dtype=tf.int32, name="count", **local)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        if self.pool_size == 0:
            return images
        return tf.stack([self._query(images[i]) for i in range(images.shape[0])])

    def _query(self, image: tf.Tensor) -> tf.Tensor:
        count = self.count.read_value()
        coin_seed = tf.stack([tf.constant(self.seed, tf.int64),
                              replica_id() * 2**32 + tf.cast(count, tf.int64)])
        index_seed = coin_seed + [0, 2**31]  # another stream: the index is independent of the coin

        def store() -> tf.Tensor:
            self._put(count, image)
            return image

        def swap() -> tf.Tensor:
            index = tf.random.stateless_uniform([], index_seed, 0, self.pool_size, dtype=tf.int32)
            old = tf.gather(self.images, index)
            with tf.control_dependencies([old]):
                self._put(index, image)
            return old

        def maybe_swap() -> tf.Tensor:  # the pool is written only when it changes
            return tf.cond(tf.random.stateless_uniform([], coin_seed) < 0.5, swap, lambda: image)

        result = tf.cond(count < self.pool_size, store, maybe_swap)
        with tf.control_dependencies([result]):
            self.count.assign_add(1)
        return tf.identity(result)

    def _put(self, index: tf.Tensor, image: tf.Tensor) -> None:
        # Sync-on-read (per-replica) variables have no scatter update: assign the whole pool.
        # It is one copy of pool_size images per query, small next to a training step.
        self.images.assign(tf.tensor_scatter_nd_update(self.images, [[index]], image[tf.newaxis]))


def replica_id() -> tf.Tensor:
    """This replica's index under tf.distribute (0 outside): each replica draws its own choices."""
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(replica, tf.int64)
