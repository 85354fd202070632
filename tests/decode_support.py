"""The device the decode tests run on: `DARC_TEST_DEVICE` when set (the GPU check script sets
`cuda`, and then a machine without cuda is an error, not a skip), else cuda when torch sees a
GPU, else the CPU."""

from __future__ import annotations

import os

import torch


def decode_device() -> torch.device:
    wanted = os.environ.get("DARC_TEST_DEVICE", "").strip()
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"DARC_TEST_DEVICE={wanted} but torch sees no CUDA device "
                               f"(torch {torch.__version__}, built for cuda {torch.version.cuda})")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
