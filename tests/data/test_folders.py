"""ImageFolder and SegmentationFolder: torchvision's folder conventions, the decode cache, and
one clear error per kind of bad input. Every folder is written by the test (Pillow)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from juanji.data import DataLoader, ImageFolder, SegmentationFolder
from juanji.data.loader import _has_array_path
from juanji.data.transforms import Compose, RandomHorizontalFlip, ToFloat


def write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)
    return path


def grey(seed, shape=(6, 5)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """root/a_dog (2 images, one nested), root/b_cat (1 image, 1 text file); written pixels."""
    root = tmp_path / "pets"
    pixels = {"a_dog/x.png": grey(1), "a_dog/sub/y.PNG": grey(2), "b_cat/z.bmp": grey(3)}
    for name, array in pixels.items():
        write(root / name, array)
    (root / "b_cat" / "notes.txt").write_text("not an image")
    return root, pixels


def test_image_folder_follows_torchvision_conventions(folder, tmp_path):
    root, pixels = folder
    ds = ImageFolder(root, cache=tmp_path / "cache")
    assert ds.classes == ["a_dog", "b_cat"]
    assert ds.class_to_idx == {"a_dog": 0, "b_cat": 1}
    # torchvision's order: folders sorted by path, then files by name
    assert [os.path.relpath(p, root) for p, _ in ds.samples] == ["a_dog/x.png", "a_dog/sub/y.PNG",
                                                                 "b_cat/z.bmp"]
    assert ds.targets == [0, 0, 1] and ds.labels.dtype == np.int64
    assert ds.skipped == 1  # notes.txt
    assert ds.mode == "L" and ds.images.shape == (3, 6, 5, 1) and ds.images.dtype == np.uint8
    for i, (path, _) in enumerate(ds.samples):
        np.testing.assert_array_equal(ds.images[i, ..., 0], pixels[os.path.relpath(path, root)])
    image, target = ds[2]
    np.testing.assert_array_equal(image[..., 0], pixels["b_cat/z.bmp"])
    assert target == 1 and len(ds) == 3


def test_one_colour_image_makes_the_folder_rgb_and_mode_can_be_forced(folder, tmp_path):
    root, pixels = folder
    colour = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write(root / "b_cat" / "w.png", colour)
    ds = ImageFolder(root, cache=False)
    assert ds.mode == "RGB" and ds.images.shape == (4, 6, 5, 3)
    x = ds.samples.index((str(root / "a_dog" / "x.png"), 0))
    np.testing.assert_array_equal(ds.images[x], np.repeat(pixels["a_dog/x.png"][..., None], 3, -1))
    np.testing.assert_array_equal(ds.images[ds.samples.index((str(root / "b_cat" / "w.png"), 1))],
                                  colour)
    forced = ImageFolder(root, mode="L", cache=False)
    assert forced.mode == "L" and forced.images.shape == (4, 6, 5, 1)


def test_size_resizes_and_mixed_sizes_without_it_name_two_files(folder):
    root, _ = folder
    write(root / "b_cat" / "big.png", grey(5, (12, 10)))
    with pytest.raises(ValueError, match=r"images differ in size: .*a_dog/x.png is 6x5 "
                                         r"\(HxW\) but .*b_cat/big.png is 12x10; give size="):
        ImageFolder(root, cache=False)
    ds = ImageFolder(root, size=(3, 4), cache=False)
    assert ds.images.shape == (4, 3, 4, 1)
    # a 2x downscale of a constant image stays that constant
    write(root / "b_cat" / "big.png", np.full((12, 10), 77))
    ds = ImageFolder(root, size=6, cache=False)
    np.testing.assert_array_equal(ds.images[ds.targets.index(1)], 77)


def test_cache_is_reused_and_rebuilt_when_a_file_changes(folder, tmp_path):
    root, _ = folder
    cache = tmp_path / "cache"
    first = ImageFolder(root, cache=cache)
    assert not first.from_cache and isinstance(first.images, np.memmap)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert [f[0] for f in manifest["files"]] == ["a_dog/x.png", "a_dog/sub/y.PNG", "b_cat/z.bmp"]
    assert manifest["shape"] == [3, 6, 5, 1]
    second = ImageFolder(root, cache=cache)
    assert second.from_cache
    np.testing.assert_array_equal(second.images, first.images)

    path = root / "a_dog" / "x.png"
    write(path, np.full((6, 5), 9))
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    changed = ImageFolder(root, cache=cache)
    assert not changed.from_cache
    np.testing.assert_array_equal(changed.images[0, ..., 0], 9)
    assert ImageFolder(root, cache=cache).from_cache

    write(root / "b_cat" / "new.png", grey(6))
    added = ImageFolder(root, cache=cache)
    assert not added.from_cache and len(added) == 4
    assert ImageFolder(root, mode="RGB", cache=cache).images.shape == (4, 6, 5, 3)  # options too
    assert sorted(p.name for p in cache.iterdir()) == ["images.u8", "manifest.json"]


def test_default_cache_lives_under_home_keyed_by_root_and_options(folder, monkeypatch, tmp_path):
    root, _ = folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    a = ImageFolder(root)
    b = ImageFolder(root, size=(3, 3))
    base = tmp_path / "home" / ".cache" / "juanji" / "folders"
    assert a.cache_dir.parent == base and b.cache_dir.parent == base
    assert a.cache_dir != b.cache_dir
    assert ImageFolder(root).from_cache


def test_image_folder_feeds_the_dataloader_fast_path(folder):
    root, pixels = folder
    ds = ImageFolder(root, Compose([ToFloat(), RandomHorizontalFlip(p=1.0)]), cache=False)
    assert _has_array_path(ds)
    (images, labels), = list(DataLoader(ds, batch_size=3))
    assert images.dtype == np.float32 and images.shape == (3, 1, 6, 5)
    np.testing.assert_allclose(images[2, 0], pixels["b_cat/z.bmp"][:, ::-1] / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels, [0, 0, 1])
    np.testing.assert_allclose(ds[2][0][0], pixels["b_cat/z.bmp"][:, ::-1] / 255, rtol=1e-6)


def test_image_folder_bad_input_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found: .*nowhere"):
        ImageFolder(tmp_path / "nowhere")
    root = tmp_path / "flat"
    write(root / "a.png", grey(0))
    with pytest.raises(ValueError, match=r"no class folders in .*flat: expected one sub-folder "
                                         r"per class .*it holds 1 images directly"):
        ImageFolder(root)
    (root / "cats").mkdir()
    (root / "cats" / "readme.md").write_text("")
    with pytest.raises(ValueError, match=r"class folder .*flat/cats has no images: expected "
                                         r"files ending in .png.* \(1 other files skipped\)"):
        ImageFolder(root)
    with pytest.raises(ValueError, match=r"size must be None, a positive int or \(H, W\); got "
                                         r"size=\(0, 3\)"):
        ImageFolder(root, size=(0, 3))


def test_an_unreadable_image_among_many_is_named_and_leaves_no_cache(tmp_path):
    root = tmp_path / "many"
    for i in range(12):
        write(root / f"c{i % 2}" / f"{i:02d}.png", grey(i))
    bad = root / "c1" / "05.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a valid header, truncated data
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"cannot read image .*c1/05.png.*\(image \d+ of 12 "
                                         r"under .*many"):
        ImageFolder(root, cache=cache)
    assert not cache.exists() or not any(cache.iterdir())
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"cannot read image .*c1/05.png"):
        ImageFolder(root, cache=cache)


# ---- SegmentationFolder ------------------------------------------------------------------------

def palette_mask(path, indices):
    """Write indices (H, W) as a palette PNG whose colours differ from the indices."""
    img = Image.fromarray(np.asarray(indices, np.uint8), "P")
    img.putpalette([255 - i for i in range(256)] * 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@pytest.fixture
def seg(tmp_path):
    root = tmp_path / "seg"
    rng = np.random.default_rng(0)
    masks = {"a": rng.integers(0, 3, (8, 6)), "b": rng.integers(0, 2, (8, 6))}
    write(root / "images" / "a.png", grey(1, (8, 6)))
    write(root / "images" / "b.jpg", np.full((8, 6), 100))
    palette_mask(root / "masks" / "a.png", masks["a"])
    write(root / "masks" / "b.png", masks["b"])  # grey "L"
    return root, masks


def test_segmentation_folder_pairs_images_and_masks_by_stem(seg):
    root, masks = seg
    ds = SegmentationFolder(root)
    assert ds.stems == ["a", "b"] and len(ds) == 2
    assert ds.images.shape == (2, 8, 6, 1) and ds.mode == "L"
    np.testing.assert_array_equal(ds.images[0, ..., 0], grey(1, (8, 6)))
    np.testing.assert_array_equal(ds.masks[0], masks["a"])  # palette indices, not colours
    np.testing.assert_array_equal(ds.masks[1], masks["b"])
    assert ds.num_classes == 3 and ds.labels is ds.masks
    assert SegmentationFolder(root, num_classes=5).num_classes == 5


def test_segmentation_batches_move_masks_with_their_images(seg):
    root, masks = seg
    ds = SegmentationFolder(root, Compose([ToFloat(), RandomHorizontalFlip(p=1.0)]))
    (images, labels), = list(DataLoader(ds, batch_size=2))
    assert images.dtype == np.float32 and images.shape == (2, 1, 8, 6)
    assert labels.dtype == np.int64 and labels.shape == (2, 8, 6)
    np.testing.assert_array_equal(labels[0], masks["a"][:, ::-1])
    np.testing.assert_allclose(images[0, 0], grey(1, (8, 6))[:, ::-1] / 255, rtol=1e-6)
    image, mask = ds[1]
    np.testing.assert_array_equal(mask, masks["b"][:, ::-1])


def test_segmentation_size_resizes_masks_by_nearest(seg):
    root, masks = seg
    ds = SegmentationFolder(root, size=(16, 12))
    assert ds.images.shape == (2, 16, 12, 1) and ds.masks.shape == (2, 16, 12)
    np.testing.assert_array_equal(ds.masks[0], np.repeat(np.repeat(masks["a"], 2, 0), 2, 1))


def test_segmentation_bad_input_names_both_files(seg):
    root, _ = seg
    palette_mask(root / "masks" / "c.png", np.zeros((8, 6)))
    with pytest.raises(ValueError, match=r"mask .*masks/c.png has no image: expected "
                                         r".*images/c\.<png"):
        SegmentationFolder(root)
    (root / "masks" / "c.png").unlink()
    write(root / "images" / "d.png", grey(2, (8, 6)))
    with pytest.raises(ValueError, match=r"image .*images/d.png has no mask: expected "
                                         r".*masks/d.png"):
        SegmentationFolder(root)
    write(root / "masks" / "d.png", np.full((8, 5), 7))
    with pytest.raises(ValueError, match=r"image .*images/d.png is 8x6 \(HxW\) but its mask "
                                         r".*masks/d.png is 8x5"):
        SegmentationFolder(root)
    write(root / "masks" / "d.png", np.full((8, 6), 7))
    with pytest.raises(ValueError, match=r"mask .*masks/d.png has the value 7, but "
                                         r"num_classes=4: class indices must lie in 0..3"):
        SegmentationFolder(root, num_classes=4)
    assert SegmentationFolder(root).num_classes == 8
    write(root / "masks" / "d.png", np.zeros((8, 6, 3)))
    with pytest.raises(ValueError, match=r"mask .*masks/d.png has mode 'RGB'; expected a "
                                         r"class-index image"):
        SegmentationFolder(root)


def test_segmentation_folder_needs_images_and_masks_folders(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"needs a sub-folder masks/"):
        SegmentationFolder(tmp_path)
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match=r"images has no images: expected files ending in"):
        SegmentationFolder(tmp_path)
