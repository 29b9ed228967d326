"""Hand-written twins of the everyday networks that ship as configs (SPEC section 5).

Each is written the way its source writes it, in plain torch (no netcli import):

- torchvision's resnet18 (torchvision/models/resnet.py: BasicBlock, ResNet, _make_layer,
  the init loop in ResNet.__init__), reduced to what resnet18 uses;
- Dive into Deep Learning (PyTorch edition): Inception and GoogLeNet's b3 (8.4), Residual (8.6),
  DenseBlock (8.7), VGG-11 with its vgg_block (8.2), in the book's non-lazy form with explicit
  input channels;
- a Transformer encoder classifier and a small U-Net, written the way a PyTorch user writes them.

Every builder takes no required argument, so `torch.manual_seed(s); EXTRA_TWINS[stem]()` gives the
seeded network its config must reproduce; `example_input(stem)` gives an input it runs on.
BatchNorm and Dropout make train-mode outputs differ from run to run (running stats, masks):
compare outputs in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --- torchvision: resnet18 -----------------------------------------------------------------------


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                     padding=dilation, groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1,
                 base_width=64, dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        # Both self.conv1 and self.downsample layers downsample the input when stride != 1
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False,
                 groups=1, width_per_group=64, replace_stride_with_dilation=None,
                 norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            # each element in the tuple indicates if we should replace
            # the 2x2 stride with a dilated convolution instead
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "replace_stride_with_dilation should be None "
                f"or a 3-element tuple, got {replace_stride_with_dilation}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

        # Zero-initialize the last BN in each residual branch,
        # so that the residual branch starts with zeros, and each residual block behaves like an identity.
        # This improves the model by 0.2~0.3% according to https://arxiv.org/abs/1706.02677
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )

        layers = []
        layers.append(
            block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                  previous_dilation, norm_layer)
        )
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                      dilation=self.dilation, norm_layer=norm_layer)
            )

        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)

        return x


def resnet18(num_classes=1000):
    """torchvision.models.resnet18(weights=None): ResNet(BasicBlock, [2, 2, 2, 2]), 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


# --- D2L 8.4: Inception and GoogLeNet's b3 -------------------------------------------------------


class Inception(nn.Module):
    # c1--c4 are the number of output channels for each path
    def __init__(self, in_channels, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        # Path 1 is a single 1 x 1 convolutional layer
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        # Path 2 is a 1 x 1 convolutional layer followed by a 3 x 3
        # convolutional layer
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        # Path 3 is a 1 x 1 convolutional layer followed by a 5 x 5
        # convolutional layer
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        # Path 4 is a 3 x 3 maximum pooling layer followed by a 1 x 1
        # convolutional layer
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        # Concatenate the outputs on the channel dimension
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet_b3():
    """GoogLeNet's third stage: 192 channels in (12x12 for the book's 96x96 images), 480 out at half the size."""
    return nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                         Inception(256, 128, (128, 192), (32, 96), 64),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


# --- D2L 8.6: Residual ---------------------------------------------------------------------------


class Residual(nn.Module):
    """The Residual block of ResNet models.

    The book's current edition creates conv1..conv3 with nn.LazyConv2d(num_channels, ...) and bn1, bn2
    with nn.LazyBatchNorm2d(); this is its non-lazy form (the earlier edition's), with the input
    channels explicit, so the parameters exist (and are drawn) in __init__.
    """

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def residual():
    """The book's two examples one after the other: Residual(3, 3) keeps (4, 3, 6, 6);
    Residual(3, 6, use_1x1conv=True, strides=2) then gives (4, 6, 3, 3)."""
    return nn.Sequential(Residual(3, 3), Residual(3, 6, use_1x1conv=True, strides=2))


# --- D2L 8.7: DenseBlock -------------------------------------------------------------------------


def conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    # The book's current edition uses conv_block(num_channels) with LazyBatchNorm2d/LazyConv2d;
    # this is the non-lazy form with the input channels explicit.
    def __init__(self, num_convs, input_channels, num_channels):
        super(DenseBlock, self).__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            # Concatenate input and output of each block along the channels
            X = torch.cat((X, Y), dim=1)
        return X


def densenet_block():
    """The book's example: DenseBlock(2, 3, 10) on (4, 3, 8, 8) gives (4, 23, 8, 8)."""
    return DenseBlock(2, 3, 10)


# --- a Transformer encoder classifier ------------------------------------------------------------


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size=100, d_model=32, nhead=4, num_layers=2, num_classes=10):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        # TransformerEncoder deep-copies the layer num_layers times: layers.0 and layers.1 start equal
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, batch_first=True), num_layers=num_layers)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens):
        h = self.encoder(self.embedding(tokens))  # (batch, seq, d_model)
        return self.head(h.mean(dim=1))


def transformer_encoder():
    """Token ids (2, 16) in [0, 100) -> logits (2, 10)."""
    return TransformerClassifier(vocab_size=100, d_model=32, nhead=4, num_layers=2, num_classes=10)


# --- a small U-Net -------------------------------------------------------------------------------


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class UNet(nn.Module):
    """Two levels down (max pool, double conv), two up (transposed conv, concatenated skip, double conv)."""

    def __init__(self, in_channels=1, num_classes=2, base=8):
        super().__init__()
        self.inc = DoubleConv(in_channels, base)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(base, base * 2))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(base * 2, base * 4))
        self.up1 = nn.ConvTranspose2d(base * 4, base * 2, kernel_size=2, stride=2)
        self.conv1 = DoubleConv(base * 4, base * 2)
        self.up2 = nn.ConvTranspose2d(base * 2, base, kernel_size=2, stride=2)
        self.conv2 = DoubleConv(base * 2, base)
        self.outc = nn.Conv2d(base, num_classes, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.up1(x3)
        x = self.conv1(torch.cat([x2, x], dim=1))
        x = self.up2(x)
        x = self.conv2(torch.cat([x1, x], dim=1))
        return self.outc(x)


def unet():
    """(2, 1, 32, 32) -> (2, 2, 32, 32); any height and width divisible by 4."""
    return UNet(in_channels=1, num_classes=2, base=8)


# --- D2L 8.2: VGG-11 -----------------------------------------------------------------------------


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg(conv_arch, size=224, hidden=4096):
    # The book fixes size=224 (a 7x7 map after five halvings) and hidden=4096; both are
    # arguments here only so that a reduced network runs fast in tests.
    conv_blks = []
    in_channels = 1
    # The convolutional part
    for (num_convs, out_channels) in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    side = size // 2 ** len(conv_arch)

    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        # The fully-connected part
        nn.Linear(out_channels * side * side, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, 10))


def vgg11():
    """D2L's VGG-11 as the book builds it: (1, 1, 224, 224) -> (1, 10), 128,806,154 parameters."""
    return vgg(conv_arch)


RATIO = 8
small_conv_arch = [(pair[0], pair[1] // RATIO) for pair in conv_arch]


def vgg11_small():
    """The same network with channels and hidden units divided by 8 on 64x64 images:
    (2, 1, 64, 64) -> (2, 10). configs/vgg11.yaml builds it with
    --set vars.c1=8 --set vars.c2=16 --set vars.c3=32 --set vars.c4=64 --set vars.hidden=512
    --set input=[2,1,64,64]."""
    return vgg(small_conv_arch, size=64, hidden=4096 // RATIO)


# --- the table the config tests read -------------------------------------------------------------

# config stem -> hand-written builder (seed with torch.manual_seed before calling)
EXTRA_TWINS = {
    "resnet18": resnet18,
    "inception": googlenet_b3,
    "residual": residual,
    "densenet_block": densenet_block,
    "transformer_encoder": transformer_encoder,
    "unet": unet,
    "vgg11": vgg11,
}

# config stem -> the example input the config's `input:` describes: (shape, dtype, high)
EXAMPLE_INPUTS = {
    "resnet18": ((2, 3, 224, 224), torch.float32, None),
    "inception": ((2, 192, 12, 12), torch.float32, None),
    "residual": ((4, 3, 6, 6), torch.float32, None),
    "densenet_block": ((4, 3, 8, 8), torch.float32, None),
    "transformer_encoder": ((2, 16), torch.int64, 100),
    "unet": ((2, 1, 32, 32), torch.float32, None),
    "vgg11": ((1, 1, 224, 224), torch.float32, None),
    "vgg11_small": ((2, 1, 64, 64), torch.float32, None),
}

# config stem -> the output shape for the example input
EXAMPLE_OUTPUTS = {
    "resnet18": (2, 1000),
    "inception": (2, 480, 6, 6),
    "residual": (4, 6, 3, 3),
    "densenet_block": (4, 23, 8, 8),
    "transformer_encoder": (2, 10),
    "unet": (2, 2, 32, 32),
    "vgg11": (1, 10),
    "vgg11_small": (2, 10),
}


def example_input(stem, generator=None):
    """A random input of the shape and dtype EXAMPLE_INPUTS gives for `stem`."""
    shape, dtype, high = EXAMPLE_INPUTS[stem]
    if dtype.is_floating_point:
        return torch.rand(shape, generator=generator, dtype=dtype)
    return torch.randint(0, high, shape, generator=generator, dtype=dtype)
