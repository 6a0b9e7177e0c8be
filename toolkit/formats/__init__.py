"""One module per weights format (plus `core`: the error type, hashing, strict checks and the
bounds every reader applies before it materialises anything). `toolkit.checkpoints` detects the
format and is the one entry point; these modules never download anything."""
