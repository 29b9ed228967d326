"""Run netcli as `python -m netcli`."""
from netcli.cli.commands import main

main()
