"""The emulated arm64 board shared by the tests that run edgebrain on aarch64 (see board.py)."""
