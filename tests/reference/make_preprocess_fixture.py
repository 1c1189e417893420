#!/usr/bin/env python3
"""Makes the fixture tests/unit/test_engine_preprocess.c compares engine/preprocess.c against, with
transformers' PIL-based CLIPImageProcessor (backend="pil", the slow processor; resampling by Pillow) as the
reference:

    .venv/bin/pip install pillow
    .venv/bin/python tests/reference/make_preprocess_fixture.py tests/data/preprocess

The processor is configured as llava-hf/llava-1.5-*-hf's preprocessor_config.json (shortest edge S, centre
crop S x S, resample 3 = bicubic, CLIP mean and std), with S = 32 and 48 on small images and 336 on one.
Two modes:
    hf   the image straight into the processor (llava-hf's LlavaProcessor)
    pad  LLaVA-1.5's original recipe (image_aspect_ratio = "pad"): first pasted centred on a square of the
         shorter side's padding colour, int(m * 255) for each CLIP mean m, offset (long - short) // 2

Files written into the output folder:
    *.png, *.jpg    the inputs: synthetic images (gradients, hard saturated edges, noise) of varied sizes and
                    aspect ratios; JPEGs in 4:2:0, 4:4:4 progressive and greyscale
    want_*.png      what the reference's pixel_values decode to in the uint8 domain (the script asserts that
                    every value it returned is exactly norm[c][u] for some u, so nothing is lost)
    norm.safetensors  norm [3, 256]: the reference's pixel value for every channel and uint8 level
    cases.txt       one line per check, space-separated:
        P <input> <mode> <S> <want>   preprocess and compare with the reference's pixel values
        R <input> <w> <h> <want>      Pillow's Image.resize((w, h), BICUBIC) alone
        J <input.jpg> <decoded.png>   Pillow's decoding of a JPEG (the C side decodes with libjpeg-turbo)

P lines on JPEG inputs were computed from Pillow's decoding (the decoded PNG next to it), so decoder
differences are checked on their own by the J lines. Deterministic: the same library versions write the
same bytes.
"""
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image
from transformers import AutoImageProcessor

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]

# (name, width, height, seed): landscape, portrait, square, extreme ratios, odd sides, up- and downscales.
PNG_SOURCES = [
    ("land37x23", 37, 23, 1),
    ("port23x61", 23, 61, 2),
    ("sq40", 40, 40, 3),
    ("wide90x17", 90, 17, 4),
    ("land64x48", 64, 48, 5),
    ("port20x33", 20, 33, 6),
    ("port33x90", 33, 90, 7),
    ("sq19", 19, 19, 8),
    ("port40x100", 40, 100, 10),  # at 32 Pillow runs the vertical pass first (see RESIZES)
    ("port48x70", 48, 70, 14),  # at 48 the width is not resized
]
JPEG_SOURCES = [  # (name, width, height, seed, Pillow save options, greyscale)
    ("j420_57x41", 57, 41, 11, {"quality": 90, "subsampling": 2}, False),
    ("j444p_41x57", 41, 57, 12, {"quality": 85, "subsampling": 0, "progressive": True}, False),
    ("jgrey_30x44", 30, 44, 13, {"quality": 90}, True),
]
BIG = ("land75x52", 75, 52, 9)  # the one image preprocessed at 336 (less noise: its outputs stay small)
# Image.resize alone: mixed up/down scales, one-pass cases, and both orders of the passes (Pillow 13 runs the
# vertical pass first when the height loses more than twice as many pixels as the width; 40x40 to 35x30 is
# the tie, horizontal first).
RESIZES = [
    ("land37x23", 50, 11),
    ("port23x61", 20, 15),
    ("land64x48", 60, 30),
    ("sq40", 35, 30),
    ("sq40", 35, 29),
    ("wide90x17", 13, 40),
    ("sq40", 40, 7),
    ("port20x33", 61, 33),
    ("land64x48", 5, 3),
    ("sq19", 1, 1),
]


def synth(w, h, seed, grey=False, noise=12.0):
    """A test card: smooth waves, hard saturated blocks (to make bicubic overshoot and clip), noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.6), rng.uniform(0, 6.3)
        img[..., c] = 128 + 110 * np.sin(fx * x + fy * y + ph)
    block = ((x // max(1, w // 5)) + (y // max(1, h // 4))) % 2 == 1
    corner = (x < w / 3) & (y < h / 2)
    img[block & corner] = [255, 0, 255]
    img[~block & corner] = [0, 255, 0]
    img += rng.normal(0, noise, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if grey:
        img = np.repeat(img[..., 1:2], 3, axis=2)
    return Image.fromarray(img, "RGB")


def processor(size):
    """The slow CLIP processor configured as llava-hf's preprocessor_config.json, at crop size `size`."""
    cfg = {
        "image_processor_type": "CLIPImageProcessor",
        "crop_size": {"height": size, "width": size},
        "size": {"shortest_edge": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": MEAN,
        "image_std": STD,
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
    }
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(cfg, f)
        p = AutoImageProcessor.from_pretrained(d, backend="pil")
    assert type(p).__name__ == "CLIPImageProcessorPil", type(p)
    return p


def pad_square(img):
    """LLaVA-1.5's pad step: the image centred on a square of the mean colour."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    bg = tuple(int(m * 255) for m in MEAN)
    out = Image.new(img.mode, (side, side), bg)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def pixel_values(img, size, mode):
    src = pad_square(img) if mode == "pad" else img
    out = processor(size)(images=src, return_tensors="np")["pixel_values"][0]
    assert out.shape == (3, size, size) and out.dtype == np.float32, (out.shape, out.dtype)
    return out


def norm_table():
    """What the processor makes of each uint8 level, read from a 16 x 16 image holding all 256 of them."""
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = Image.fromarray(np.stack([levels] * 3, axis=2), "RGB")
    out = processor(16)(images=img, return_tensors="np", do_resize=False, do_center_crop=False)
    return out["pixel_values"][0].reshape(3, 256)


def to_uint8(values, table):
    """The uint8 image whose normalisation is exactly `values` (asserted: the reference went through uint8)."""
    out = np.zeros(values.shape[1:] + (3,), dtype=np.uint8)
    for c in range(3):
        lookup = {v.tobytes(): u for u, v in enumerate(table[c])}
        flat = [lookup[v.tobytes()] for v in values[c].reshape(-1)]
        out[..., c] = np.array(flat, dtype=np.uint8).reshape(values.shape[1:])
    return out


def write_safetensors(path, name, arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    header = {name: {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + arr.tobytes())


def save_png(arr_or_img, path):
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img, "RGB")
    img.save(path, format="PNG", compress_level=9)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    table = norm_table()
    write_safetensors(os.path.join(outdir, "norm.safetensors"), "norm", table)
    lines = []
    sources = {}
    for name, w, h, seed in PNG_SOURCES + [BIG]:
        sources[name] = synth(w, h, seed, noise=3.0 if name == BIG[0] else 12.0)
        save_png(sources[name], os.path.join(outdir, name + ".png"))
        sources[name] = (name + ".png", sources[name])
    for name, w, h, seed, opts, grey in JPEG_SOURCES:
        synth(w, h, seed, grey).convert("L" if grey else "RGB").save(os.path.join(outdir, name + ".jpg"), **opts)
        decoded = Image.open(os.path.join(outdir, name + ".jpg")).convert("RGB")
        save_png(decoded, os.path.join(outdir, name + "_pil.png"))
        lines.append(f"J {name}.jpg {name}_pil.png")
        sources[name] = (name + ".jpg", decoded)
    plan = [(n, s, m) for n in sources if n != BIG[0] for s in (32, 48) for m in ("pad", "hf")]
    plan += [(BIG[0], 336, "pad"), (BIG[0], 336, "hf")]
    for name, size, mode in plan:
        file, img = sources[name]
        want = f"want_{name}_{mode}{size}.png"
        save_png(to_uint8(pixel_values(img, size, mode), table), os.path.join(outdir, want))
        lines.append(f"P {file} {mode} {size} {want}")
    for name, w, h in RESIZES:
        file, img = sources[name]
        want = f"want_{name}_resize{w}x{h}.png"
        save_png(img.resize((w, h), resample=Image.BICUBIC), os.path.join(outdir, want))
        lines.append(f"R {file} {w} {h} {want}")
    with open(os.path.join(outdir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/preprocess")
