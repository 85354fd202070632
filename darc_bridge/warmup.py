"""Compile librosa's numba kernels once, in one process, so later parallel runs only read the cache.

Several processes compiling the same numba function at once can corrupt its on-disk cache
(numba/numba#10128, librosa#1998) and crash later with a segfault; `make setup` runs this.
"""

from __future__ import annotations

import numpy as np


def warm_up_librosa() -> None:
    import librosa

    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    librosa.onset.onset_detect(y=y, sr=22050)
    librosa.beat.beat_track(y=y, sr=22050)
    librosa.util.peak_pick(np.abs(y[:2048]), pre_max=3, post_max=3, pre_avg=3, post_avg=3, delta=0.1, wait=3)


if __name__ == "__main__":
    warm_up_librosa()
    print("librosa kernels compiled")
