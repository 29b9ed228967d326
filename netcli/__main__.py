"""Run netcli as `python -m netcli`."""

from netcli.core.safepath import drop_implicit_cwd

drop_implicit_cwd(module_run=True)  # before anything else is imported from the current folder

from netcli.cli.script import collect_less_often  # noqa: E402

collect_less_often()

from netcli.cli.commands import main  # noqa: E402
from netcli.cli.script import skip_the_final_collection  # noqa: E402

try:
    main()
finally:
    skip_the_final_collection()
