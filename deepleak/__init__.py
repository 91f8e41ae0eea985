"""DeepLeak: audit and harden the membership leakage of post-hoc explanations."""

__version__ = "0.1.0"
