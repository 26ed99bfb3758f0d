"""The device profiles, one TOML file each: the only copy. The build installs this folder as the
package ``edgebrain.device_profiles`` (setup.py, pyproject.toml); ``edgebrain.devices`` finds them."""
