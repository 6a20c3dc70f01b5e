"""The real ONNX models, fetched once per session by tools/get-onnx-models.

`onnx_models` is THE ONE FIXTURE THAT REACHES THE NETWORK: it runs the script, which `pip
download`s pinned, sha256-checked archives into a cache outside the repository
($JUANJI_ONNX_MODELS, else ~/.cache/juanji/onnx-models) unless they are there already. Every
test that uses it is marked `network` (and `slow`), so `-m "not network"` leaves them out; when
the download fails they are skipped with the script's one-line reason.
"""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "get-onnx-models"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "onnx_models" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.network)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def onnx_models():
    """{name: path} of the real models (see tools/get-onnx-models for names and sources)."""
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"real ONNX models unavailable: {reason}")
    return dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
