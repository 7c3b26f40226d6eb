"""An autoencoder discriminator (EBGAN, BEGAN): its verdict on an image is how badly it reconstructs it.

Encoder: strided 4x4 convs (28 -> 14 -> 7, or 32 -> 16 -> 8, plus 64 -> 32) -> linear -> code.
Decoder: linear -> [c, s, s] -> 4x4 ConvTranspose 2x stages -> image (no output squashing: the
reconstruction error is the signal, so it must be free to be large). No BatchNorm (a batch holds
real and generated images, whose statistics would leak into each other's reconstructions).
Conditional: one-hot label planes join the encoder's input and the one-hot label joins the code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import Generator
from training.nets.layers import image_plan

ACTIVATIONS = {"lrelu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "relu": nn.ReLU}


def activation_layer(name: str):
    """The constructor of the named activation; a clear error for an unknown name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def decoder_stages(chans: list[int], act) -> list[nn.Module]:
    """(activation, 4x4 ConvTranspose 2x) from each channel count to the next: the decoder's stages."""
    stages: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:], strict=True):
        stages += [act(), nn.ConvTranspose2d(a, b, 4, 2, 1)]
    return stages


class AutoencoderDiscriminator(nn.Module):
    def __init__(
        self, image_shape, num_classes: int, conditional: bool, width: int = 32, code_dim: int = 64,
        activation: str = "lrelu",
    ):  # fmt: skip
        super().__init__()
        act = activation_layer(activation)
        self.s, stages = image_plan(image_shape)
        self.num_classes, self.conditional = num_classes, conditional
        extra = num_classes if conditional else 0
        chans = [width * 2**k for k in range(stages)]
        self.c_last = chans[-1]
        enc: list[nn.Module] = []
        for a, b in zip([image_shape[0] + extra, *chans[:-1]], chans, strict=True):
            enc += [nn.Conv2d(a, b, 4, 2, 1), act()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(self.c_last * self.s * self.s, code_dim))
        self.expand = nn.Linear(code_dim + extra, self.c_last * self.s * self.s)
        self.decoder = nn.Sequential(*decoder_stages([*chans[::-1], image_shape[0]], act))

    def _one_hot(self, labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.num_classes).to(like.dtype)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            planes = self._one_hot(labels, x)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, planes], 1)
        return self.encoder(x)

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            code = torch.cat([code, self._one_hot(labels, code)], 1)
        return self.decoder(self.expand(code).view(-1, self.c_last, self.s, self.s))

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction of x, the encoder's code)."""
        code = self.encode(x, labels)
        return self.decode(code, labels), code


class DecoderGenerator(Generator):
    """BEGAN's generator: the autoencoder's decoder shape, fed by z (+ a label embedding), no BatchNorm.

    linear -> [c, s, s] -> (activation, 4x4 ConvTranspose 2x) per stage -> tanh. The paper gives G the
    decoder's architecture so that G can draw what D reconstructs; DCGAN's G with BatchNorm is the
    alternative (arch_params `generator`).
    """

    def __init__(
        self, latent_dim: int, num_classes: int, conditional: bool, image_shape, width: int = 32,
        embed_dim: int = 32, activation: str = "elu",
    ):  # fmt: skip
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        act = activation_layer(activation)
        self.s, stages = image_plan(image_shape)
        chans = [width * 2**k for k in range(stages)][::-1] + [image_shape[0]]
        self.c0 = chans[0]
        self.embed = nn.Embedding(num_classes, embed_dim) if conditional else None
        self.fc = nn.Linear(latent_dim + (embed_dim if conditional else 0), self.c0 * self.s * self.s)
        self.up = nn.Sequential(*decoder_stages(chans, act), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        return self.up(self.fc(z).view(-1, self.c0, self.s, self.s))


class MLPAutoencoderDiscriminator(nn.Module):
    """The fully connected autoencoder of EBGAN's MNIST experiments: image -> hidden -> code -> hidden -> image.

    Same interface as AutoencoderDiscriminator (forward -> (reconstruction, code)); no BatchNorm for
    the same reason; conditional: the one-hot label joins the encoder's input and the code.
    """

    def __init__(
        self, image_shape, num_classes: int, conditional: bool, hidden: int = 256, code_dim: int = 64,
        activation: str = "lrelu",
    ):  # fmt: skip
        super().__init__()
        act = activation_layer(activation)
        self.image_shape, self.num_classes, self.conditional = tuple(image_shape), num_classes, conditional
        pixels, extra = math.prod(image_shape), num_classes if conditional else 0
        self.encoder = nn.Sequential(nn.Linear(pixels + extra, hidden), act(), nn.Linear(hidden, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim + extra, hidden), act(), nn.Linear(hidden, pixels))

    def _with_label(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        return torch.cat([h, F.one_hot(labels, self.num_classes).to(h.dtype)], 1)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction of x, the encoder's code)."""
        code = self.encoder(self._with_label(x.flatten(1), labels))
        return self.decoder(self._with_label(code, labels)).view(-1, *self.image_shape), code
