"""The tml wing: the config format (schemas, loading) and the builders of optimizers from it."""
