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

Also DCGAN and WGAN-GP as cyclegan_tf.generators writes them (NoiseGenerator, NoiseDiscriminator,
DCGAN.train_step, WGANGP.train_step): transposed 4x4 convolutions with batch norm + ReLU in G,
strided 4x4 convolutions with LeakyReLU 0.2 in D (batch norm for DCGAN, layer norm over each
image's C, H, W for the WGAN-GP critic), a moving average of G's weights updated every step.

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


# -- DCGAN and WGAN-GP ------------------------------------------------------------------------------

class NoiseGenerator(nn.Module):
    """z [N, z_dim] -> [N, 3, size, size]: 1x1 -> size/16 -> x2 four times (64 px: 4 -> 64)."""

    def __init__(self, z_dim: int = 128, size: int = 64, ngf: int = 64):
        super().__init__()
        layers, c_in = [], z_dim
        for i, c_out in enumerate((ngf * 8, ngf * 4, ngf * 2, ngf)):
            conv = (nn.ConvTranspose2d(c_in, c_out, size // 16, 1, 0, bias=False) if i == 0
                    else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False))
            layers += [conv, nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1), nn.ReLU(True)]
            c_in = c_out
        layers += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(-1, self.z_dim, 1, 1))


class NoiseDiscriminator(nn.Module):
    """[N, 3, size, size] -> one logit per image; norm "batch" (DCGAN) or "layer" (WGAN-GP)."""

    def __init__(self, size: int = 64, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        layers, c_in, side = [], 3, size
        for i, c_out in enumerate((ndf, ndf * 2, ndf * 4, ndf * 8)):
            side //= 2
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out) if norm == "batch"
                              else nn.LayerNorm([c_out, side, side]))
            layers.append(nn.LeakyReLU(0.2, True))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, side, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class NoiseGAN:
    """DCGAN (n_critic 1, batch-norm D, cross-entropy) or WGAN-GP (n_critic critic updates on
    their own real batches, layer-norm critic, gradient penalty); G_ema after every step."""

    def __init__(self, model: str = "dcgan", size: int = 64, ngf: int = 64, ndf: int = 64,
                 z_dim: int = 128, n_critic: int = 5, gp_weight: float = 10.0,
                 ema_decay: float = 0.999):
        self.wgan = model == "wgangp"
        self.G = NoiseGenerator(z_dim, size, ngf)
        self.D = NoiseDiscriminator(size, ndf, "layer" if self.wgan else "batch")
        for network in (self.G, self.D):
            network.apply(init_weights)
            network.train()
        self.G_ema = NoiseGenerator(z_dim, size, ngf)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.requires_grad_(False)
        lr, betas = (1e-4, (0.0, 0.9)) if self.wgan else (2e-4, (0.5, 0.999))
        self.G_optimizer = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)
        self.D_optimizer = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.n_critic = n_critic if self.wgan else 1
        self.gp_weight, self.ema_decay, self.z_dim = gp_weight, ema_decay, z_dim
        self.bce = nn.BCEWithLogitsLoss()

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], 1, 1, 1)
        between = (real + alpha * (fake - real)).requires_grad_(True)
        grads, = torch.autograd.grad(self.D(between).sum(), between, create_graph=True)
        return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        """real: n_critic batches stacked (one for DCGAN)."""
        for real_i in real.chunk(self.n_critic):
            z = torch.randn(real_i.shape[0], self.z_dim)
            self.D_optimizer.zero_grad(set_to_none=True)
            if self.wgan:
                with torch.no_grad():  # as the TF step: G runs outside the critic's tape
                    fake = self.G(z)
                D_loss = (self.D(fake).mean() - self.D(real_i).mean()
                          + self.gp_weight * self.gradient_penalty(real_i, fake))
                D_loss.backward()
                self.D_optimizer.step()
        if self.wgan:
            self.G_optimizer.zero_grad(set_to_none=True)
            self.D.requires_grad_(False)
            G_loss = -self.D(self.G(torch.randn(real_i.shape[0], self.z_dim))).mean()
            G_loss.backward()
            self.D.requires_grad_(True)
            self.G_optimizer.step()
        else:  # as DCGAN.train_step: one forward of D on the fakes serves both losses
            fake = self.G(z)
            score_real, score_fake = self.D(real_i), self.D(fake)
            D_loss = (self.bce(score_real, torch.ones_like(score_real))
                      + self.bce(score_fake, torch.zeros_like(score_fake)))
            G_loss = self.bce(score_fake, torch.ones_like(score_fake))
            D_params, G_params = list(self.D.parameters()), list(self.G.parameters())
            D_grads = torch.autograd.grad(D_loss, D_params, retain_graph=True)
            G_grads = torch.autograd.grad(G_loss, G_params)
            self.G_optimizer.zero_grad(set_to_none=True)
            for param, grad in zip(D_params + G_params, D_grads + G_grads):
                param.grad = grad
            self.D_optimizer.step()
            self.G_optimizer.step()
        with torch.no_grad():
            for average, weight in zip(self.G_ema.state_dict().values(),
                                       self.G.state_dict().values()):
                if average.dtype.is_floating_point:
                    average.lerp_(weight, 1 - self.ema_decay)
        return {"G": G_loss.item(), "D": D_loss.item()}


if __name__ == "__main__":  # a smoke test: python benchmarks/torch_reference.py
    torch.manual_seed(0)
    model = CycleGAN(ngf=8, ndf=8, n_blocks=3)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    print(model.train_step(x, y))
    print(model.G(x).shape, model.D_X(x).shape)
    for name in ("dcgan", "wgangp"):
        gan = NoiseGAN(name, 64, 8, 8, n_critic=2)
        print(name, gan.train_step(torch.rand(2 * gan.n_critic, 3, 64, 64) * 2 - 1))
