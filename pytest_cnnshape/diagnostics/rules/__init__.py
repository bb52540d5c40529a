"""One module per family of mistakes; ``diagnostics.diagnose`` asks them in order."""
