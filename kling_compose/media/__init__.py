"""Media layer: ffmpeg/PyAV helpers, frame extraction, animatics and assembly (see docs/media.md)."""
