"""Training data: song stems on disk, Demucs separation, segments, rhythm augmentation, a synthetic corpus."""
