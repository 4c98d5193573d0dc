"""The architectures: softmax regression, MLP, LeNet-5, a CIFAR-style ResNet, and torchvision models by name.

``build_model(args)`` builds a module from its arguments (a JSON-able dict stored in checkpoints and the
model card), so a saved model is rebuilt exactly from its card plus its safetensors weights.
"""
from __future__ import annotations

import torch
from torch import nn

from shared.errors import InvalidParameter

BUILTIN = ("softmax", "mlp", "lenet5", "resnet")
RESNET_DEPTHS = "6n+2: 8, 14, 20, 32, 44, 56, 110"


class Softmax(nn.Module):
    """Multinomial logistic regression on the raw pixels: the classic first model."""

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class MLP(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int], width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_channels * image_size[0] * image_size[1], width), nn.ReLU(),
                                 nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.net(x.flatten(1))


class LeNet5(nn.Module):
    """LeNet-5 (6 and 16 5x5 filters, 120-84 dense), with ReLU and max pooling. The first convolution keeps
    the size (padding 2, as for 28x28 MNIST); the second pads too when the image is small (8x8 digits)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        h, w = image_size[0] // 2, image_size[1] // 2
        pad2 = 0 if min(h, w) >= 10 else 2
        h, w = (h + 2 * pad2 - 4) // 2, (w + 2 * pad2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016): three stages of 16/32/64 channels, depth = 6n + 2."""

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int], depth: int = 20,
                 width: int = 16):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


class GrayToRGB(nn.Module):
    """Feeds 1-channel images to a torchvision model built for 3 channels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)


def check_arch(arch: str, depth: int | None = None) -> None:
    """InvalidParameter for an unknown architecture or a ResNet depth that is not 6n+2."""
    if arch == "resnet":
        if depth is not None and (depth < 8 or (depth - 2) % 6):
            raise InvalidParameter(f"--depth: a CIFAR ResNet has depth 6n+2 ({RESNET_DEPTHS}); got {depth}")
        return
    if arch in BUILTIN:
        return
    from workers.cnn.zoo import torchvision_models  # noqa: PLC0415

    names = torchvision_models()
    if arch not in names:
        raise InvalidParameter(f"--arch: unknown architecture {arch!r} (one of {', '.join(BUILTIN)}, or a torchvision "
                               f"classification model such as resnet18, mobilenet_v3_small: {len(names)} available)")


def build_model(args: dict) -> nn.Module:
    """A fresh (randomly initialised) model from its arguments: arch, in_channels, num_classes, image_size
    [H, W], and depth/width where the architecture takes them."""
    arch, cin, k, size = args["arch"], args["in_channels"], args["num_classes"], tuple(args["image_size"])
    if arch == "softmax":
        return Softmax(cin, k, size)
    if arch == "mlp":
        return MLP(cin, k, size, width=args.get("width") or 256)
    if arch == "lenet5":
        return LeNet5(cin, k, size)
    if arch == "resnet":
        return ResNet(cin, k, size, depth=args.get("depth") or 20, width=args.get("width") or 16)
    from workers.cnn.zoo import torchvision_model  # noqa: PLC0415

    model = torchvision_model(arch, k)
    return GrayToRGB(model) if cin == 1 else model


def load_weights_file(model: nn.Module, path: str) -> tuple[int, int]:
    """Copy tensors from a local safetensors file into ``model`` where names and shapes match (a pretrained
    file's 1000-class head is skipped). Returns (copied, skipped); InvalidParameter if nothing matches."""
    from safetensors.torch import load_file  # noqa: PLC0415

    try:
        tensors = load_file(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise InvalidParameter(f"--weights: {path}: not a readable safetensors file ({e})") from None
    own = model.state_dict()
    prefix = "model." if isinstance(model, GrayToRGB) else ""
    matched = {}
    for name, t in tensors.items():
        key = name if name in own else prefix + name
        if key in own and own[key].shape == t.shape:
            matched[key] = t
    if not matched:
        raise InvalidParameter(f"--weights: {path}: no tensor matches the model's names and shapes")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(tensors) - len(matched)
