"""The engine: templates, providers, runs. Knows nothing of Jupyter or storage."""
