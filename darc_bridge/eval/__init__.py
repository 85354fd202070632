"""Evaluation: drum transcription, rhythm-adherence and fit metrics, eval runs and reports."""
