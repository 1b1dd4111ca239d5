"""The namespace lab behind tests/lab/labctl (tests/lab/README.md, Code layout)."""
