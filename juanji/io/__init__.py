"""Saving and loading: atomic files, safetensors checkpoints, run folders."""
