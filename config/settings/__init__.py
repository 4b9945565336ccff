"""Settings: ``base`` reads the environment; ``test`` adds test-only defaults."""
