"""Import audiocraft safely next to torch 2.13 (see ../shared/REFERENCE.md section 1).

audiocraft imports xformers, spacy and friends eagerly; xformers warns loudly about
missing CUDA extensions. Everything that needs audiocraft goes through here.
"""

from __future__ import annotations

import logging
import os
import warnings


def import_audiocraft():
    """Return the `audiocraft` module with noisy loggers silenced and the hub kept offline by default."""
    logging.getLogger("xformers").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import audiocraft  # noqa: PLC0415

    return audiocraft
