"""Write the embedded "shapes" dataset: a small, deterministic COCO instance-segmentation set.

    python tools/dataset_converters/make_shapes_coco.py                 # -> data/shapes/
    python tools/dataset_converters/make_shapes_coco.py --out /tmp/s --num-train 16 --num-val 8
    python tools/dataset_converters/make_shapes_coco.py --check         # exit 0 if data/shapes is valid

Layout (what ``configs/embedded/*shapes*.py`` reads)::

    data/shapes/
      train/000000.png ...
      val/000000.png ...
      annotations/instances_train.json
      annotations/instances_val.json

Every image shows 1-4 objects of three classes (circle, triangle, rectangle) with random size,
colour, position, rotation and overlap on a textured background (gradient + stripes + noise).
Annotations are the *visible* part of each object (later objects occlude earlier ones): polygons
from the visible mask's contours, its pixel area and its tight box, ``iscrowd=0``; objects that are
mostly hidden are re-drawn elsewhere. Train and val come from disjoint seeds, so val images are
never seen in training. Same arguments -> byte-identical files.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

import cv2
import numpy as np

CLASSES = ('circle', 'triangle', 'rectangle')
VERSION = 1            # bump when the drawing changes: --check then regenerates
TRAIN_SEED = 1000      # image i of train uses seed TRAIN_SEED + i; val uses VAL_SEED + i
VAL_SEED = 900000      # (train never reaches it: at most 899000 training images)
# The defaults are what configs/embedded/*shapes*.py train on (tests/test_quickstart.py checks).
NUM_TRAIN, NUM_VAL, SIZE = 600, 100, 128


def _background(rng, size):
    h = w = size
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xx * math.cos(ang) + yy * math.sin(ang)) / size + 1) / 2
    t = np.clip(t, 0, 1)[..., None]
    img = c0 * (1 - t) + c1 * t
    # stripes or checker texture
    period = rng.uniform(6, 24)
    amp = rng.uniform(0, 25)
    if rng.random() < 0.5:
        tex = np.sin((xx * math.cos(ang + 1) + yy * math.sin(ang + 1)) * 2 * math.pi / period)
    else:
        tex = np.sign(np.sin(xx * 2 * math.pi / period) * np.sin(yy * 2 * math.pi / period))
    img += amp * tex[..., None]
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return img


SUPER = 4   # masks are drawn at 4x resolution, so the polygons follow the true outline


def _shape_mask(rng, cls, size, min_obj, max_obj):
    """A random shape of class ``cls`` as a filled uint8 mask at ``SUPER`` x resolution."""
    s = rng.uniform(min_obj, max_obj)
    cx, cy = rng.uniform(s / 2, size - s / 2, 2)
    m = np.zeros((size * SUPER, size * SUPER), np.uint8)
    if cls == 0:    # circle (slightly elliptic)
        ax = (int(round(s / 2 * SUPER)), int(round(s / 2 * rng.uniform(0.85, 1.0) * SUPER)))
        cv2.ellipse(m, (int(round(cx * SUPER)), int(round(cy * SUPER))), ax,
                    rng.uniform(0, 180), 0, 360, 1, -1)
    else:
        a = rng.uniform(0, 2 * math.pi)
        if cls == 1:    # triangle, roughly equilateral
            angs = a + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.2, 0.2, 3)
            r = s / 2 * 1.1
            pts = np.stack([cx + r * np.cos(angs), cy + r * np.sin(angs)], 1)
        else:           # rectangle with aspect ratio 0.5..1
            hw, hh = s / 2, s / 2 * rng.uniform(0.5, 1.0)
            corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pts = corners @ rot.T + [cx, cy]
        cv2.fillPoly(m, [np.round(pts * SUPER).astype(np.int32)], 1)
    return m


def _polygons(mask_hi):
    """Outer contours of a ``SUPER`` x mask, in image pixel coordinates (COCO polygons)."""
    contours, _ = cv2.findContours(mask_hi, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3 and cv2.contourArea(c) >= 4 * SUPER * SUPER:
            polys.append([round((float(v) + 0.5) / SUPER, 2) for v in c.reshape(-1)])
    return polys


def _low_res(mask_hi, size):
    return (cv2.resize(mask_hi.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
            >= 0.5)


def make_image(seed, size=SIZE, max_objs=4):
    """One image (H x W x 3 uint8, BGR) and its objects: list of (class, visible mask at
    ``SUPER`` x resolution). Object sizes scale with the image: 18-56 px at 128 px."""
    rng = np.random.default_rng(seed)
    min_obj, max_obj = 18 * size / 128, 56 * size / 128
    img = _background(rng, size)
    n = int(rng.integers(1, max_objs + 1))
    masks, classes, colours, areas = [], [], [], []
    for _ in range(n):
        for _try in range(20):
            cls = int(rng.integers(len(CLASSES)))
            m = _shape_mask(rng, cls, size, min_obj, max_obj)
            # visible parts if this one goes on top; every object keeps >= 60 % of itself
            ok = all((mk & (1 - m)).sum() >= 0.6 * full for mk, full in zip(masks, areas))
            if ok:
                break
        else:
            continue
        for i in range(len(masks)):
            masks[i] = masks[i] & (1 - m)
        # a colour far enough from the background under the shape
        bg = img[_low_res(m, size)].mean(0)
        for _c in range(20):
            col = rng.integers(0, 256, 3).astype(np.float32)
            if np.abs(col - bg).sum() > 150:
                break
        masks.append(m)
        classes.append(cls)
        colours.append(col)
        areas.append(int(m.sum()))
    for m, col in zip(masks, colours):
        sel = _low_res(m, size)
        img[sel] = col + rng.normal(0, 6, (int(sel.sum()), 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, [(c, m) for c, m in zip(classes, masks) if m.sum() > 0]


def write_split(out, split, num, seed0, size, start_ann_id=1):
    img_dir = osp.join(out, split)
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    ann_id = start_ann_id
    for i in range(num):
        img, objs = make_image(seed0 + i, size)
        name = f'{i:06d}.png'
        cv2.imwrite(osp.join(img_dir, name), img)
        images.append(dict(id=i + 1, file_name=name, height=size, width=size))
        for cls, m in objs:
            polys = _polygons(m)
            if not polys:
                continue
            xy = np.concatenate([np.reshape(p, (-1, 2)) for p in polys])
            x0, y0 = xy.min(0)
            x1, y1 = xy.max(0)
            bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
            area = round(float(m.sum()) / SUPER**2, 2)
            anns.append(dict(id=ann_id, image_id=i + 1, category_id=cls + 1, segmentation=polys,
                             area=area, bbox=bbox, iscrowd=0))
            ann_id += 1
        if (i + 1) % 100 == 0 or i + 1 == num:
            print(f'[shapes] {split}: {i + 1}/{num} images', flush=True)
    coco = dict(
        info=dict(description='dsnet_mm embedded shapes dataset', version=VERSION,
                  seed=seed0, size=size),
        licenses=[], images=images, annotations=anns,
        categories=[dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)])
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    ann_file = osp.join(out, 'annotations', f'instances_{split}.json')
    tmp = ann_file + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp, ann_file)   # the json appears last: its presence means the split is complete
    return len(images), len(anns)


def check(out, num_train=None, num_val=None, size=None):
    """'' if ``out`` holds a complete dataset of this version (and these sizes), else the reason."""
    for split, num in (('train', num_train), ('val', num_val)):
        ann = osp.join(out, 'annotations', f'instances_{split}.json')
        if not osp.isfile(ann):
            return f'{ann} is missing'
        try:
            with open(ann) as f:
                coco = json.load(f)
        except ValueError as e:
            return f'{ann} is not valid json ({e})'
        info = coco.get('info', {})
        if info.get('version') != VERSION:
            return f'{ann} was written by another version of this script'
        if num is not None and len(coco['images']) != num:
            return f'{ann} has {len(coco["images"])} images, {num} wanted'
        if size is not None and info.get('size') != size:
            return f'{ann} has image size {info.get("size")}, {size} wanted'
        if not coco['annotations']:
            return f'{ann} has no annotations'
        missing = [im['file_name'] for im in coco['images']
                   if not osp.isfile(osp.join(out, split, im['file_name']))]
        if missing:
            return f'{len(missing)} images of {split} are missing (e.g. {missing[0]})'
    return ''


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/shapes')
    p.add_argument('--num-train', type=int, default=NUM_TRAIN)
    p.add_argument('--num-val', type=int, default=NUM_VAL)
    p.add_argument('--size', type=int, default=SIZE, help='image side in pixels')
    p.add_argument('--check', action='store_true',
                   help='only check that --out holds a complete dataset of these sizes')
    p.add_argument('--force', action='store_true', help='rewrite even if a valid dataset exists')
    args = p.parse_args(argv)
    if args.num_train > VAL_SEED - TRAIN_SEED:
        p.error('too many training images: their seeds would reach the validation seeds')
    why = check(args.out, args.num_train, args.num_val, args.size)
    if args.check:
        print(f'[shapes] {args.out}: ' + (why or 'complete'))
        return 1 if why else 0
    if not why and not args.force:
        print(f'[shapes] {args.out} is complete ({args.num_train} train / {args.num_val} val), '
              'nothing to do')
        return 0
    print(f'[shapes] writing {args.out} ({args.num_train} train / {args.num_val} val images of '
          f'{args.size} px){": " + why if why else ""}', flush=True)
    for split, num, seed in (('train', args.num_train, TRAIN_SEED),
                             ('val', args.num_val, VAL_SEED)):
        n_img, n_ann = write_split(args.out, split, num, seed, args.size)
        print(f'[shapes] {split}: {n_img} images, {n_ann} objects', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
