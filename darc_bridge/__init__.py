"""darc-bridge: drum accompaniment that follows your rhythm, beside your DAW."""

__version__ = "0.1.0"
