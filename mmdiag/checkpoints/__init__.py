"""Building checkpoints offline: word-level tokenizers and tiny random models of each family."""
