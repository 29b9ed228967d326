"""The netcli version, in one place (the package, checkpoints and the schema file carry it)."""

VERSION = "0.1.0"
