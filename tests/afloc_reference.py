"""AFLoc's inference path re-implemented from its code (github.com/YH0517/AFLoc at 940e3d7), for
the conversion test only. AFLoc's own classes cannot run here: they need torch 1.8-era
torchvision (`pretrained=`), pytorch-lightning 1.1, numpy 1 (`numpy.lib.function_base`) and a
hub download of Bio_ClinicalBERT. The ResNet-50 is torchvision's own, as AFLoc's is. Each
function names the lines of AFLoc's code it follows; the converter is written separately."""

from __future__ import annotations

import re

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def resize_img(img: np.ndarray, scale: int) -> np.ndarray:
    """afloc/models/afloc_model.py:370-417 (_resize_img): the long side to `scale` (INTER_AREA),
    the other int()-truncated, zero padding split floor/ceil."""
    size = img.shape
    max_dim = max(size)
    max_ind = size.index(max_dim)
    if max_ind == 0:
        wpercent = scale / float(size[0])
        hsize = int(float(size[1]) * float(wpercent))
        desireable_size = (scale, hsize)
    else:
        hpercent = scale / float(size[1])
        wsize = int(float(size[0]) * float(hpercent))
        desireable_size = (wsize, scale)
    resized = cv2.resize(img, desireable_size[::-1], interpolation=cv2.INTER_AREA)
    if max_ind == 0:
        pad = scale - resized.shape[1]
        top, bottom, left, right = 0, 0, int(np.floor(pad / 2)), int(np.ceil(pad / 2))
    else:
        pad = scale - resized.shape[0]
        top, bottom, left, right = int(np.floor(pad / 2)), int(np.ceil(pad / 2)), 0, 0
    return np.pad(resized, [(top, bottom), (left, right)], "constant", constant_values=0)


def process_img(gray_uint8: np.ndarray) -> torch.Tensor:
    """afloc_model.py:333-368 (process_img, equalize_hist=False) with the test transform of
    builder.py:211-224 (CenterCrop(224), ToTensor, Normalize 0.5/0.5), imsize 224 as
    inference.py:30 sets it. (1, 3, 224, 224)."""
    from PIL import Image
    from torchvision import transforms

    x = resize_img(gray_uint8, 224)
    img = Image.fromarray(x).convert("RGB")
    transform = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return transform(img)[None]


def image_forward(resnet: torch.nn.Module, local_embedder: torch.nn.Module,
                  global_embedder: torch.nn.Module, imgs: torch.Tensor) -> tuple:
    """vision_model.py:144-178 (resnet_forward) and 116-142 (generate_embeddings); inference.py
    :45-49 reshapes the local embeddings to (h, w, D). -> (iel (19, 19, D), ieg (1, D))."""
    x = torch.nn.Upsample(size=(299, 299), mode="bilinear", align_corners=True)(imgs)
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    x = resnet.layer2(resnet.layer1(x))
    x = resnet.layer3(x)
    local_features = x
    x = resnet.layer4(x)
    x = torch.nn.AdaptiveAvgPool2d((1, 1))(x).view(x.size(0), -1)
    ieg = global_embedder(x)
    iel = local_embedder(local_features)
    return iel.view(-1, *iel.shape[2:]).permute(1, 2, 0), ieg


def process_text(text: str, tokenizer: object, word_num: int) -> dict:
    """afloc_model.py:243-330 (process_text) for one text."""
    t = text.replace("\n", " ")
    captions = re.compile(r"[0-9]+\.").split(t)
    captions = [sent for point in (c.split(".") for c in captions) for sent in point]
    all_sents = []
    for caption in captions:
        caption = caption.replace("\ufffd\ufffd", " ")
        tokens = re.findall(r"\w+", caption.lower())  # nltk RegexpTokenizer(r"\w+")
        if len(tokens) <= 1:
            continue
        included = [w.encode("ascii", "ignore").decode("ascii") for w in tokens]
        all_sents.append(" ".join(w for w in included if len(w) > 0))
    return tokenizer(" ".join(all_sents), return_tensors="pt", truncation=True,
                     padding="max_length", max_length=word_num)


def text_forward(bert: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                 idxtoword: dict[int, str]) -> torch.Tensor:
    """text_model.py:108-160 (forward, last_n_layers 4, aggregate "sum") with aggregate_tokens
    (35-106): word pieces summed into words, padded with zeros to the sequence length, the
    mean over those word slots, then the sum over the four layers. -> teg (1, D)."""
    outputs = bert(ids, mask, torch.zeros_like(ids), output_hidden_states=True)
    embeddings = torch.stack(outputs.hidden_states[-4:]).permute(1, 0, 2, 3)  # (B, 4, L, D)
    batch, layers, num_words, dim = embeddings.shape
    per_token = embeddings.permute(0, 2, 1, 3)
    aggregated = []
    for embs, caption_id in zip(per_token, ids, strict=True):
        agg, bank = [], []
        for word_emb, word_id in zip(embs, caption_id, strict=True):
            word = idxtoword[int(word_id)]
            if word == "[SEP]":
                agg.append(torch.stack(bank).sum(0))
                agg.append(word_emb)
                break
            if not word.startswith("##"):
                if bank:
                    agg.append(torch.stack(bank).sum(0))
                bank = [word_emb]
            else:
                bank.append(word_emb)
        agg = torch.stack(agg)
        aggregated.append(torch.cat([agg, torch.zeros(num_words - len(agg), layers, dim)]))
    embeddings = torch.stack(aggregated).permute(0, 2, 1, 3)
    return embeddings.mean(dim=2).sum(dim=1)


def similarity_map(iel: torch.Tensor, teg: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """eval/common.py:114-137 (plain dot product, scipy gaussian_filter sigma 1.5) and 139-182
    (convert_similarity_to_image_size with width = height = resize = crop = 224, bilinear, as
    inference runs it at common.py:51-62 and 226-232). -> (smoothed grid, 224 x 224 map)."""
    h, w, dim = iel.shape
    sim = (iel.reshape(-1, dim) @ teg.t()).reshape(h, w).numpy()
    smoothed = ndimage.gaussian_filter(sim, sigma=(1.5, 1.5), order=0)
    upsampled = F.interpolate(torch.tensor(smoothed)[None, None], size=(224, 224), mode="bilinear",
                              align_corners=False)[0, 0]
    return smoothed, upsampled.numpy()
