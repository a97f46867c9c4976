"""distilkit: distil a BERT-style teacher into a smaller, faster student."""

__version__ = "0.1.0"
