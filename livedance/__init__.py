"""livedance: a 3D body that dances to live music, in real time."""

__version__ = "0.1.0"
