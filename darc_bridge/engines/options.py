"""The one table of generation options: type, range and default, read by everyone who takes them.

GenerationParams, the DARC engine, the command line and the OSC protocol all check an option
against this table, so a range or a default is written once. A default of None means "not fixed
here": the checkpoint's own value for the model options (a `tiny` checkpoint's top_k of 50 stays
50), a random seed, the mix's sample rate. Adding an option is one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from darc_bridge.errors import InputError


@dataclass(frozen=True)
class OptionSpec:
    """One option: its OSC type ('f' float, 'i' int, 's' string), inclusive range or choices, default."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        """The value as its type, or InputError naming the option and the allowed range."""
        if self.kind == "s":
            if not isinstance(value, str):
                raise InputError(f"{name} must be a string, got {describe_value(value)}")
            if self.choices and value not in self.choices:
                raise InputError(f"{name} must be one of {', '.join(self.choices)}, got {value[:40]!r}")
            return value
        if not is_number(value):
            raise InputError(f"{name} must be a number, got {describe_value(value)}")
        if not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value}")
        if self.kind == "i":
            if float(value) != int(value):
                raise InputError(f"{name} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.lo is not None and self.hi is not None and not self.lo <= value <= self.hi:
            raise InputError(f"{name} must be between {fmt(self.lo, self.kind)} and {fmt(self.hi, self.kind)}, "
                             f"got {fmt(value, self.kind)}")
        return value


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def fmt(v: float, kind: str) -> str:
    """Whole numbers in full (a seed of 2147483648, not 2.14748e+09), others short."""
    return str(int(v)) if kind == "i" else f"{v:g}"


def describe_value(v: Any) -> str:
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bool):
        return "a boolean"
    if is_number(v):
        return f"the number {v!r}"
    if isinstance(v, bytes):
        return "a blob"
    return type(v).__name__


# Every engine. seed: OSC ints are 32-bit signed, so the largest seed a DAW can send bounds it.
GENERATION_OPTIONS: dict[str, OptionSpec] = {
    "temperature": OptionSpec("f", 0.0, 5.0, 1.0, help="sampling temperature (kit: humanisation; 0 = deterministic)"),
    "rhythm_strength": OptionSpec("f", 0.0, 4.0, 1.0, help="0 ignores the prompt, 1 follows it, >1 pushes adherence"),
    "quantize": OptionSpec("f", 0.0, 1.0, 0.0, help="how far hits snap toward the mix's beat grid"),
    "seed": OptionSpec("i", 0, 2**31 - 1, None, help="same seed + same input = same stem (default: random)"),
    "sample_rate": OptionSpec("i", 8000, 192000, None, help="sample rate of the stem (default: the mix's)"),
}

# The DARC engine (GenerationParams.extra). top_k is bounded by the codec's codebook (2048 entries).
MODEL_OPTIONS: dict[str, OptionSpec] = {
    "top_k": OptionSpec("i", 0, 2048, None, help="top-k sampling, 0 = off (default: the checkpoint's)"),
    "top_p": OptionSpec("f", 0.0, 1.0, None, help="nucleus sampling, 0 = off (default: off)"),
    "cfg_coef": OptionSpec("f", 0.0, 10.0, None, help="classifier-free guidance (default: the checkpoint's)"),
}

# Engine-internal settings (not sent by DAW devices): windowing of long regions.
WINDOW_OPTIONS: dict[str, OptionSpec] = {
    "window_s": OptionSpec("f", 1.0, 600.0, None),
    "overlap_s": OptionSpec("f", 0.0, 300.0, None),
}
