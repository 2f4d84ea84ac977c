"""kling-compose: a declarative storyboard compiler for AI video."""

__version__ = "0.1.0"
