"""Data: datasets, the DataLoader, transforms and file readers; pure NumPy.

Batches come out as NumPy arrays, images float32 (N, C, H, W) and labels int64 (N,) (masks
(N, H, W) for segmentation); the trainer wraps them in Tensors.
"""

from juanji.data import transforms
from juanji.data.datasets import (
    CIFAR10,
    MNIST,
    ArrayDataset,
    Dataset,
    DatasetNotFoundError,
    FashionMNIST,
    read_cifar10_batch,
    search_locations,
)
from juanji.data.folders import ImageFolder, SegmentationFolder
from juanji.data.idx import IDXError, read_idx, write_idx
from juanji.data.loader import DataLoader

__all__ = [
    "CIFAR10",
    "MNIST",
    "ArrayDataset",
    "DataLoader",
    "Dataset",
    "DatasetNotFoundError",
    "FashionMNIST",
    "IDXError",
    "ImageFolder",
    "SegmentationFolder",
    "read_cifar10_batch",
    "read_idx",
    "search_locations",
    "transforms",
    "write_idx",
]
