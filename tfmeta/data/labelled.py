"""Labelled examples grouped by class: the source every episode is drawn from."""

import numpy as np


class LabelledData:
    """Examples and their class labels, held in memory and grouped by class.

    Few-shot sampling needs random access to "the examples of class c", so the
    examples are stored sorted by class: the examples of class `c` are
    `images[class_start[c]:class_start[c] + class_count[c]]`. Within a class the
    original order is kept, which makes everything downstream deterministic.

    Args:
        images: array `[num_examples, ...]` of any numeric dtype.
        labels: integer array `[num_examples]` with values in
            `[0, len(class_names))`.
        class_names: one unique name per class (strings). Defaults to the
            labels' string forms, `"0"`, `"1"`, ...

    Example:
        >>> data = LabelledData(np.zeros([6, 2]), np.array([0, 1, 2, 0, 1, 2]))
        >>> data.num_classes, data.class_count.tolist()
        (3, [2, 2, 2])
    """

    def __init__(self, images, labels, class_names=None):
        images = self._checked_examples(images)
        labels = np.asarray(labels)
        if labels.shape != images.shape[:1]:
            raise ValueError(
                "`labels` must be a vector with one label per example: expected shape "
                f"({images.shape[0]},), received {labels.shape}."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"`labels` must be integers; received dtype {labels.dtype}.")
        if labels.min() < 0:
            raise ValueError(f"`labels` must be non-negative; received {labels.min()}.")
        if class_names is None:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
        class_names = [str(name) for name in class_names]
        if len(set(class_names)) != len(class_names):
            raise ValueError("`class_names` must be unique.")
        if labels.max() >= len(class_names):
            raise ValueError(
                f"`labels` must lie in [0, {len(class_names)}) (one per class name); "
                f"received {labels.max()}."
            )

        order = np.argsort(labels, kind="stable")
        self.images = images[order]
        self.labels = labels[order]
        self.class_names = class_names
        self.class_count = np.bincount(self.labels, minlength=len(class_names))
        self.class_start = np.concatenate([[0], np.cumsum(self.class_count)[:-1]])
        empty = np.flatnonzero(self.class_count == 0)
        if empty.size:
            raise ValueError(
                f"{empty.size} class(es) have no example, e.g. {class_names[empty[0]]!r}; "
                "every class name needs at least one example."
            )

    @staticmethod
    def _checked_examples(images):
        """`images` as an array, after checks of what an example may be (subclasses hold other kinds)."""
        images = np.asarray(images)
        if images.ndim < 1 or images.shape[0] == 0:
            raise ValueError(
                f"`images` must hold at least one example; received shape {images.shape}."
            )
        if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
            raise ValueError(f"`images` must be numeric; received dtype {images.dtype}.")
        return images

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def example_shape(self):
        return self.images.shape[1:]

    def __len__(self):
        return self.images.shape[0]

    def __repr__(self):
        return (
            f"LabelledData({len(self)} examples of shape {self.example_shape}, "
            f"{self.num_classes} classes)"
        )

    def select_classes(self, names):
        """Returns the data of the named classes only, in the given order."""
        index = {name: c for c, name in enumerate(self.class_names)}
        missing = [name for name in names if name not in index]
        if missing:
            raise ValueError(
                f"{len(missing)} class(es) not in the data, e.g. {missing[0]!r}."
            )
        old = np.array([index[name] for name in names], dtype=np.int64)
        rows = np.concatenate(
            [np.arange(self.class_start[c], self.class_start[c] + self.class_count[c]) for c in old]
        )
        new_label = np.repeat(np.arange(len(names)), self.class_count[old])
        return type(self)(self.images[rows], new_label, list(names))

    @classmethod
    def from_dataset(cls, dataset, image_key=None, label_key=None):
        """Reads a finite labelled `tf.data.Dataset` into memory.

        Args:
            dataset: yields `(image, label)` pairs, or dicts from which
                `image_key` and `label_key` are taken (e.g. a TFDS split with
                `"image"` and `"label"`). Unbatched.
            image_key, label_key: dict keys, required for dict elements.

        Labels may be any integers; they are renumbered to `0..C-1` in
        increasing order and the original values kept as class names.
        """
        spec = dataset.element_spec
        if isinstance(spec, dict):
            if image_key not in spec or label_key not in spec:
                raise ValueError(
                    "A dataset of dicts needs `image_key` and `label_key` naming two of its "
                    f"keys {sorted(spec)}; received image_key={image_key!r}, "
                    f"label_key={label_key!r}."
                )
            dataset = dataset.map(lambda element: (element[image_key], element[label_key]))
        elif not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                "`dataset` must yield (image, label) pairs or dicts; received elements "
                f"of spec {spec}."
            )
        if dataset.cardinality() == -1:  # tf.data.INFINITE_CARDINALITY
            raise ValueError("`dataset` is infinite; pass a finite labelled dataset.")
        images, labels = [], []
        for image_batch, label_batch in dataset.batch(4096).as_numpy_iterator():
            images.append(image_batch)
            labels.append(label_batch)
        if not images:
            raise ValueError("`dataset` is empty.")
        raw_labels = np.concatenate(labels)
        values, dense_labels = np.unique(raw_labels, return_inverse=True)
        return cls(np.concatenate(images), dense_labels.reshape(-1), [str(v) for v in values])
