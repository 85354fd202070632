"""Training DARC: the token cache, the fine-tuning loop (single process or DDP) and codec training."""
