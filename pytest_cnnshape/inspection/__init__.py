"""Model inspection: parameter breakdown, regularization report, CNN lint, FLOPs, memory.

The public names are exported lazily from the package root (``pytest_cnnshape.lint``,
``pytest_cnnshape.count_flops``, ...). This package imports nothing itself, and its
torch-free modules (``catalog``, ``findings``, ``render``) let the plugin, the
config parser and the report read lint rules and results without loading torch.
"""
