import hashlib
import os
import os.path as osp
import tempfile
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

from etf_plugin.functional import long_tail_counts

# (name, BGR colour, shape) of every class, in profile order: class 0 is the
# most frequent.
SHAPE_CLASSES = (
    ('red_rectangle', (40, 40, 230), 'rectangle'),
    ('green_ellipse', (40, 220, 40), 'ellipse'),
    ('blue_rectangle', (230, 60, 40), 'rectangle'),
    ('yellow_ellipse', (40, 220, 230), 'ellipse'),
    ('cyan_rectangle', (230, 220, 40), 'rectangle'),
    ('magenta_ellipse', (220, 40, 220), 'ellipse'),
)
# The background is dark noise below this level; every class colour has a
# channel above 200, so shapes stand out.
NOISE_MAX = 110
COLOUR_JITTER = 25


@DATASETS.register_module()
class SyntheticShapes(BaseDataset):
    """Long-tailed detection data drawn in memory: coloured rectangles and
    ellipses on noise, for tests and demos of the MMDetection adapter.

    Six classes, each a colour and a shape. Class ``k`` has
    ``long_tail_counts(6, n_max, imbalance_ratio)[k]`` instances in the whole
    set (the exponential profile of the classification datasets); they are
    shuffled and packed one to ``max_per_img`` per image, at non-overlapping
    random places and sizes. Everything is drawn from ``seed``, so the same
    arguments give the same images, boxes and order in every process; give
    the validation set another seed (and ``imbalance_ratio=1`` for a
    balanced one).

    Every image is also written as a lossless PNG file, ``img_path`` in its
    data info, so that pipelines start with mmdet's standard
    ``LoadImageFromFile`` and the tools that need files or paths work
    unchanged: ``DetInferencer`` (it looks for ``LoadImageFromFile`` in the
    test pipeline), ``browse_dataset.py`` (it names its output after
    ``img_path``). The files are rewritten, atomically, each time the set is
    generated, so they always hold what the arguments draw; by default they
    go to a folder of the system's temporary directory named after a hash
    of the arguments. The BGR ``uint8`` array is also kept under ``'img'``
    (what ``LoadImageFromFile`` reads back, bit for bit) for pipelines that
    start with ``LoadImageFromNDArray``.

    Annotations are mmdet's ``instances`` (``bbox`` in ``x1, y1, x2, y2``
    pixels, ``bbox_label``, ``ignore_flag``), read by ``LoadAnnotations``.
    Add ``'instances'`` to ``PackDetInputs``' ``meta_keys`` in the test
    pipeline to evaluate with ``CocoMetric(ann_file=None)``, which then
    builds its ground truth from them.

    Args:
        n_max (int): Instances of the most frequent class. Defaults to 24.
        imbalance_ratio (float): Instances of the rarest over the most
            frequent class. Defaults to 0.1.
        img_size (int): Height and width of the square images.
            Defaults to 128.
        max_per_img (int): Most instances in one image. Defaults to 3.
        min_size (int): Smallest box side in pixels. Defaults to 16.
        max_size (int): Largest box side in pixels. Defaults to 48.
        seed (int): Seed of the whole set. Defaults to 0.
        img_dir (str, optional): Folder for the PNG files. Defaults to None:
            ``<tmp>/etf_plugin_synthetic_shapes/<hash of the arguments>``.
        **kwargs: Passed to ``BaseDataset`` (``pipeline``, ``test_mode``,
            ``lazy_init``, ...).
    """

    METAINFO = dict(
        classes=tuple(name for name, _, _ in SHAPE_CLASSES),
        palette=[tuple(colour[::-1]) for _, colour, _ in SHAPE_CLASSES])

    def __init__(self,
                 n_max: int = 24,
                 imbalance_ratio: float = 0.1,
                 img_size: int = 128,
                 max_per_img: int = 3,
                 min_size: int = 16,
                 max_size: int = 48,
                 seed: int = 0,
                 img_dir: Optional[str] = None,
                 **kwargs):
        if not 0 < min_size <= max_size:
            raise ValueError(f'Need 0 < min_size <= max_size, got '
                             f'{min_size} and {max_size}.')
        if max_per_img < 1 or max_per_img * max_size**2 > img_size**2 / 2:
            raise ValueError(
                f'{max_per_img} boxes of up to {max_size} pixels do not fit '
                f'reliably in a {img_size}-pixel image: lower max_per_img or '
                f'max_size, or raise img_size.')
        self.n_max = n_max
        self.imbalance_ratio = imbalance_ratio
        self.img_size = img_size
        self.max_per_img = max_per_img
        self.min_size = min_size
        self.max_size = max_size
        self.seed = seed
        self.img_dir = img_dir or osp.join(
            tempfile.gettempdir(), 'etf_plugin_synthetic_shapes',
            self._arguments_hash())
        super().__init__(ann_file='', **kwargs)

    def _arguments_hash(self) -> str:
        # Different sets must not share files: two processes drawing
        # different sets at once would overwrite each other's images.
        key = repr((self.n_max, float(self.imbalance_ratio), self.img_size,
                    self.max_per_img, self.min_size, self.max_size,
                    self.seed))
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def load_data_list(self) -> List[dict]:
        rng = np.random.default_rng(self.seed)
        counts = long_tail_counts(
            len(SHAPE_CLASSES), self.n_max, self.imbalance_ratio)
        labels = np.repeat(np.arange(len(SHAPE_CLASSES)), counts)
        rng.shuffle(labels)
        data_list, start = [], 0
        while start < len(labels):
            stop = start + int(rng.integers(1, self.max_per_img + 1))
            data_list.append(
                self.draw_image(labels[start:stop], rng, len(data_list)))
            start = stop
        os.makedirs(self.img_dir, exist_ok=True)
        for info in data_list:
            info['img_path'] = osp.join(self.img_dir,
                                        f'{info["img_id"]:06d}.png')
            write_png(info['img_path'], info['img'])
        return data_list

    def draw_image(self, labels: Sequence[int], rng: np.random.Generator,
                   img_id: int) -> dict:
        """Draw one image holding one instance of each of ``labels``.

        Args:
            labels (Sequence[int]): Classes of the instances.
            rng (np.random.Generator): Source of every random choice.
            img_id (int): Id of the image.

        Returns:
            dict: mmdet's data info: ``img``, ``img_id``, ``height``,
            ``width`` and ``instances``.
        """
        size = self.img_size
        img = rng.integers(0, NOISE_MAX, (size, size, 3), dtype=np.uint8)
        rows, cols = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
        instances = []
        for label in labels:
            x1, y1, x2, y2 = self.place_box(
                rng, [inst['bbox'] for inst in instances])
            _, colour, shape = SHAPE_CLASSES[label]
            if shape == 'rectangle':
                mask = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
            else:
                cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, \
                    (x2 - x1) / 2, (y2 - y1) / 2
                mask = ((cols - cx) / ax)**2 + ((rows - cy) / ay)**2 <= 1
            jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3)
            img[mask] = np.clip(np.array(colour) + jitter, 0, 255)
            instances.append(
                dict(
                    bbox=[float(x1), float(y1),
                          float(x2), float(y2)],
                    bbox_label=int(label),
                    ignore_flag=0))
        return dict(
            img=img,
            img_id=img_id,
            height=size,
            width=size,
            instances=instances)

    def place_box(self, rng: np.random.Generator,
                  taken: List[List[float]]) -> List[int]:
        """A random box that does not touch any box in ``taken``."""
        for _ in range(1000):
            w, h = rng.integers(self.min_size, self.max_size + 1, 2)
            x1 = int(rng.integers(0, self.img_size - w + 1))
            y1 = int(rng.integers(0, self.img_size - h + 1))
            box = [x1, y1, x1 + int(w), y1 + int(h)]
            if not any(box[0] <= t[2] and t[0] <= box[2] and box[1] <= t[3]
                       and t[1] <= box[3] for t in taken):
                return box
        raise RuntimeError('Could not place a box without overlap; lower '
                           'max_per_img or max_size.')

    def get_cat_ids(self, idx: int) -> List[int]:
        """Classes of the instances of image ``idx``, as mmdet's
        ``ClassBalancedDataset`` and ``ClassAwareSampler`` ask for."""
        return [
            instance['bbox_label']
            for instance in self.get_data_info(idx)['instances']
        ]


def write_png(path: str, img: np.ndarray) -> None:
    """Write ``img`` (BGR) as a PNG, atomically: concurrent processes that
    generate the same set (distributed ranks, parallel tests) only ever see
    a complete file.

    Args:
        path (str): Destination file.
        img (np.ndarray): ``(H, W, 3)`` BGR ``uint8`` image.
    """
    ok, encoded = cv2.imencode('.png', img)
    if not ok:
        raise OSError(f'Could not encode {path} as PNG.')
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), suffix='.png.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
