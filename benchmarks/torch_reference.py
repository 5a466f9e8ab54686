"""The CycleGAN of cyclegan_tf written in PyTorch, the way the PyTorch reference
(junyanz/pytorch-CycleGAN-and-pix2pix) writes it: the throughput benchmark's baseline.

Same networks, losses and update order as cyclegan_tf.cyclegan.CycleGAN.train_step:
  * ResnetGenerator: c7s1-ngf (ReflectionPad2d(3)), two stride-2 3x3 downsamples (padding 1),
    n_blocks residual blocks (ReflectionPad2d(1)), two ConvTranspose2d(3, stride 2, padding 1,
    output_padding 1) upsamples, c7s1-3 + tanh.
  * NLayerDiscriminator (70x70 PatchGAN): 4x4 convs with padding 1, C64 (no norm), C128, C256,
    C512 (stride 1), a 1-channel map of logits; LeakyReLU 0.2.
  * InstanceNorm2d(affine=True) (our GroupNormalization(groups=-1) has a scale and an offset), no
    conv bias where a norm follows, N(0, 0.02) initialisation of every convolution.
  * One step: G and F forward, cycle and identity losses (lambda_identity 0.5), LSGAN losses, one
    joint generator backward (the discriminators' weights frozen, as the reference does) and two
    Adam steps, then D_X and D_Y on real and on pooled (detached) fakes, backward, two Adam steps.

Needs only torch: this file runs in its own virtualenv (see benchmarks/throughput.sh).
"""
from __future__ import annotations

import random

import torch
from torch import nn


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for every convolution, zero biases (the reference's init_type='normal')."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True, eps=1e-5)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), norm(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False), norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # downsampling
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=False),
                       norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # upsampling
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=False),
                       norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, ndf: int = 64):
        super().__init__()
        layers = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for mult_in, mult_out, stride in ((1, 2, 2), (2, 4, 2), (4, 8, 1)):
            layers += [nn.Conv2d(ndf * mult_in, ndf * mult_out, 4, stride=stride, padding=1,
                                 bias=False),
                       norm(ndf * mult_out), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * 8, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class ImagePool:
    """Half the time (once full) returns an older generated image and keeps the new one instead."""

    def __init__(self, pool_size: int = 50):
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                index = random.randrange(self.pool_size)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def set_requires_grad(network: nn.Module, flag: bool) -> None:
    for p in network.parameters():
        p.requires_grad_(flag)


class CycleGAN:
    """G: X -> Y, F: Y -> X, D_X judges X, D_Y judges Y; lsgan, batch as given."""

    def __init__(self, ngf: int = 64, ndf: int = 64, n_blocks: int = 9, lambda1: float = 10.0,
                 lambda2: float = 10.0, lambda_identity: float = 0.5, lr: float = 2e-4,
                 beta1: float = 0.5, pool_size: int = 50):
        self.G, self.F = ResnetGenerator(ngf, n_blocks), ResnetGenerator(ngf, n_blocks)
        self.D_X, self.D_Y = NLayerDiscriminator(ndf), NLayerDiscriminator(ndf)
        for network in (self.G, self.F, self.D_X, self.D_Y):
            network.apply(init_weights)
            network.train()
        self.lambda1, self.lambda2, self.lambda_identity = lambda1, lambda2, lambda_identity

        def adam(network):
            return torch.optim.Adam(network.parameters(), lr=lr, betas=(beta1, 0.999))

        self.G_optimizer, self.F_optimizer = adam(self.G), adam(self.F)
        self.D_X_optimizer, self.D_Y_optimizer = adam(self.D_X), adam(self.D_Y)
        self.pool_x, self.pool_y = ImagePool(pool_size), ImagePool(pool_size)
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()

    def gan_loss(self, scores: torch.Tensor, real: bool) -> torch.Tensor:
        return self.mse(scores, torch.full_like(scores, 1.0 if real else 0.0))

    def train_step(self, real_x: torch.Tensor, real_y: torch.Tensor) -> dict[str, float]:
        # Generators: the discriminators' weights need no gradient here.
        set_requires_grad(self.D_X, False)
        set_requires_grad(self.D_Y, False)
        self.G_optimizer.zero_grad(set_to_none=True)
        self.F_optimizer.zero_grad(set_to_none=True)
        fake_y = self.G(real_x)
        cycled_x = self.F(fake_y)
        fake_x = self.F(real_y)
        cycled_y = self.G(fake_x)
        G_gan = self.gan_loss(self.D_Y(fake_y), True)
        F_gan = self.gan_loss(self.D_X(fake_x), True)
        cycle = self.lambda1 * self.l1(cycled_x, real_x) + self.lambda2 * self.l1(cycled_y, real_y)
        identity = self.lambda_identity * (self.lambda2 * self.l1(self.G(real_y), real_y)
                                           + self.lambda1 * self.l1(self.F(real_x), real_x))
        generators_loss = G_gan + F_gan + cycle + identity
        generators_loss.backward()
        self.G_optimizer.step()
        self.F_optimizer.step()

        # Discriminators, on real images and on (detached) fakes from the history pools.
        set_requires_grad(self.D_X, True)
        set_requires_grad(self.D_Y, True)
        self.D_X_optimizer.zero_grad(set_to_none=True)
        self.D_Y_optimizer.zero_grad(set_to_none=True)
        pooled_y = self.pool_y.query(fake_y)
        pooled_x = self.pool_x.query(fake_x)
        D_Y_loss = 0.5 * (self.gan_loss(self.D_Y(real_y), True)
                          + self.gan_loss(self.D_Y(pooled_y), False))
        D_X_loss = 0.5 * (self.gan_loss(self.D_X(real_x), True)
                          + self.gan_loss(self.D_X(pooled_x), False))
        (D_X_loss + D_Y_loss).backward()
        self.D_X_optimizer.step()
        self.D_Y_optimizer.step()
        return {"generators": generators_loss.item(), "D_X": D_X_loss.item(),
                "D_Y": D_Y_loss.item()}


if __name__ == "__main__":  # a smoke test: python benchmarks/torch_reference.py
    torch.manual_seed(0)
    model = CycleGAN(ngf=8, ndf=8, n_blocks=3)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    print(model.train_step(x, y))
    print(model.G(x).shape, model.D_X(x).shape)
