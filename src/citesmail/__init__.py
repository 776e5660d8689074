"""citesmail: campaign files to responsive emails, audiences and scheduled sends."""

__version__ = "0.1.0"
