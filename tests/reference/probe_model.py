"""What the probes (probe_colour.py, probe_faces.py) share: a pretrain stage's model in transformers' Llava,
the world's images, and an image as the engine normalises it (CLIP's mean and standard deviation)."""
import io, tarfile
import numpy as np, torch
from PIL import Image
from transformers import LlavaForConditionalGeneration

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


class Probe:
    def __init__(self, folder):
        torch.set_num_threads(2)
        self.model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        self.tar = tarfile.open(folder + "/images.tar")
        vc = self.model.config.vision_config
        self.side, self.patch = vc.image_size, vc.patch_size
        self.grid = self.side // self.patch

    def pixels(self, name):
        rgb = Image.open(io.BytesIO(self.tar.extractfile(name + ".png").read())).convert("RGB")
        x = (np.asarray(rgb, dtype=np.float32) / 255 - MEAN) / STD
        return torch.tensor(x.transpose(2, 0, 1), dtype=torch.float32)
