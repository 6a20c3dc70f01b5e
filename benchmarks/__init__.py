"""Speed and memory of juanji against PyTorch on the same machine; never run by pytest."""
