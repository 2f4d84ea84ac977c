"""The commands around the pipeline (`cli.py` calls them): `doctor`, `report`, `export`,
`pick`, `gc`, `status`, `why` (what changed), saved plans, `adopt`, `config` and `init`."""
