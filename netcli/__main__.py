"""Run netcli as `python -m netcli`."""
from netcli.commands import main

main()
