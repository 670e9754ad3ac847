"""course_lib: the shared helper library of the course on how large language models work."""

__version__ = "0.1.0"
