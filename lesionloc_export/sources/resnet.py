"""ResNet-50 with torchvision's tensor names (BioViL's and AFLoc's image backbones are
torchvision ResNet-50s), written here so export needs no torchvision: bottleneck blocks with
the stride on the 3x3 convolution, every stage's output available."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYERS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50(nn.Module):
    """`stages(x)` -> the outputs of layer1..layer4 (strides 4, 8, 16, 32). `fc` exists only so
    the published tensor names load; nothing uses it."""

    def __init__(self, with_fc: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (blocks, planes) in enumerate(zip(LAYERS, (64, 128, 256, 512), strict=True)):
            stride = 1 if index == 0 else 2
            layer = []
            for block in range(blocks):
                layer.append(Bottleneck(inplanes, planes, stride if block == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(2048, 1000) if with_fc else None

    def stages(self, x: torch.Tensor, grey: bool = False) -> list[torch.Tensor]:
        """`grey`: x has one channel that the source model repeats on all three; the first
        convolution then runs once with its three kernels summed, the same sum of products
        in a third of the work (5 of an int8 BioViL encoder's 34 ms were this convolution)."""
        if grey:
            x = F.conv2d(x, self.conv1.weight.sum(dim=1, keepdim=True), stride=2, padding=3)
        else:
            x = self.conv1(x)
        x = self.maxpool(self.relu(self.bn1(x)))
        out = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out.append(x)
        return out
