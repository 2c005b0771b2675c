"""The package version, in one place (nothing inside the package imports the package root)."""

__version__ = '0.1.0'
