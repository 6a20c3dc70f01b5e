"""Metric-learning wrappers: Siamese networks (Bromley et al., 1993; Hadsell, Chopra & LeCun,
2006, 'Dimensionality Reduction by Learning an Invariant Mapping', trained with a contrastive
loss) and triplet networks (Hoffer & Ailon, 2015; Schroff et al., 2015, 'FaceNet', trained with
a triplet margin loss).

Both wrap one `EmbeddingNet` (backbone + linear embedding head) and apply the very same module
to every input, so the branches share weights by construction. The backbone is any module
mapping (N, C, H, W) to features (N, F) or feature maps (N, F, h, w) (global-average-pooled);
the default is a small conv net for 1x28x28 images (Fashion-MNIST). Outputs are embeddings
(N, embedding_dim), L2-normalised when `normalize=True`.
"""

import numpy as np

from juanji import nn, no_grad
from juanji.backend import xp_of
from juanji.models.validation import check_model_args
from juanji.tensor import Tensor


def small_convnet(in_channels=1, width=32):
    """conv3x3(width)-BN-ReLU-pool2 -> conv3x3(2 width)-BN-ReLU-pool2 -> conv3x3(4 width)-BN-ReLU
    -> global average pool: (N, in_channels, H, W) -> (N, 4 * width); H, W >= 4."""
    layers = []
    channels = in_channels
    for i, out in enumerate((width, 2 * width, 4 * width)):
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True)]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers += [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()]
    return nn.Sequential(*layers)


class EmbeddingNet(nn.Module):
    """backbone -> (global average pool if 4-D) -> Linear(feature_dim, embedding_dim)
    (-> L2 normalisation). (N, C, H, W) -> (N, embedding_dim)."""

    def __init__(self, backbone, feature_dim, embedding_dim, normalize=False):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, embedding_dim)
        self.normalize = normalize

    def forward(self, x):
        f = self.backbone(x)
        if f.ndim == 4:
            f = f.mean((2, 3))  # (N, F)
        e = self.head(f)  # (N, embedding_dim)
        if self.normalize:
            e = e / ((e * e).sum(1, keepdim=True) + 1e-12).sqrt()
        return e


class SiameseNetwork(nn.Module):
    """forward(x1, x2) -> (embed(x1), embed(x2)), one shared EmbeddingNet (`embedding`)."""

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding

    def embed(self, x):
        """(N, C, H, W) -> (N, embedding_dim): one branch, for retrieval or evaluation."""
        return self.embedding(x)

    def forward(self, x1, x2):
        return self.embedding(x1), self.embedding(x2)


class TripletNetwork(nn.Module):
    """forward(anchor, positive, negative) -> their three embeddings, one shared EmbeddingNet."""

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding

    def embed(self, x):
        """(N, C, H, W) -> (N, embedding_dim): one branch, for retrieval or evaluation."""
        return self.embedding(x)

    def forward(self, anchor, positive, negative):
        return self.embedding(anchor), self.embedding(positive), self.embedding(negative)


def _infer_feature_dim(backbone, input_shape):
    """Run the backbone once on zeros of shape (1, *input_shape) in eval mode, no grad."""
    modes = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        with no_grad():
            probe = next(iter(backbone.parameters()), None)
            xp = np if probe is None else xp_of(probe.data)
            out = backbone(Tensor(xp.zeros((1, *input_shape), dtype=np.float32)))
    finally:
        for m, mode in modes:
            m.training = mode
    if out.ndim not in (2, 4):
        raise ValueError(f"backbone must return (N, F) features or (N, F, h, w) maps; got "
                         f"shape {tuple(out.shape)}")
    return out.shape[1]


def _embedding_net(backbone, embedding_dim, num_classes, in_channels, input_size, normalize,
                   feature_dim):
    check_model_args(1 if num_classes is None else num_classes, in_channels)
    if num_classes is not None:  # the registry builds every model with num_classes
        if embedding_dim is not None and embedding_dim != num_classes:
            raise ValueError(f"num_classes (the output width) and embedding_dim disagree; got "
                             f"num_classes={num_classes}, embedding_dim={embedding_dim}")
        embedding_dim = num_classes
    embedding_dim = 64 if embedding_dim is None else embedding_dim
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim < 1:
        raise ValueError(f"embedding_dim must be a positive int; got {embedding_dim!r}")
    if backbone is None:
        backbone = small_convnet(in_channels)
    elif not isinstance(backbone, nn.Module):
        raise ValueError(f"backbone must be an nn.Module or None; got {type(backbone).__name__}")
    if feature_dim is None:
        feature_dim = _infer_feature_dim(backbone, (in_channels, input_size, input_size))
    return EmbeddingNet(backbone, feature_dim, embedding_dim, normalize)


def siamese(backbone=None, embedding_dim=None, num_classes=None, in_channels=1, input_size=28,
            normalize=False, feature_dim=None):
    """A Siamese network: forward(x1, x2) -> two (N, embedding_dim) embeddings (default 64).

    backbone: a module (weights shared between the branches) or None for `small_convnet`;
    feature_dim: its output width, found by a dry run on (1, in_channels, input_size,
    input_size) when None. num_classes, when given, is the embedding width (so the registry can
    build it like every other model).
    """
    return SiameseNetwork(_embedding_net(backbone, embedding_dim, num_classes, in_channels,
                                         input_size, normalize, feature_dim))


def triplet(backbone=None, embedding_dim=None, num_classes=None, in_channels=1, input_size=28,
            normalize=False, feature_dim=None):
    """A triplet network: forward(anchor, positive, negative) -> three (N, embedding_dim)
    embeddings. Arguments as for `siamese`."""
    return TripletNetwork(_embedding_net(backbone, embedding_dim, num_classes, in_channels,
                                         input_size, normalize, feature_dim))


FACTORIES = {"siamese": siamese, "triplet": triplet}
DEFAULT_INPUT = {"siamese": (1, 28, 28), "triplet": (1, 28, 28)}
