"""The package version, in a module of its own so that the model file writer (which records
it) does not have to import the package ``__init__`` (which imports the model, which imports
the writer: a loop)."""

__version__ = "0.1.0"
