"""REST API of the flags app: thin views over flags.services and flags.lookups; routes in `urls`.
The serving endpoints (resolve, OFREP, the change stream) are in `flags.serving`.

- `flags`: environments and flags (list, create, read, update, archive).
- `versions`: config versions (list, create, validate, diff).
- `publishing`: publishing a version in an environment, enabling and disabling the flag there.
- `catalog`: the Claude model catalog with its prices, and the config JSON Schema.
- `segments`: segments (list, create, read, update, delete).
- `targeting`: rules, splits, and trying a context.
- `scoping`: `EnvironmentFlagView`, the base of views whose URL names an environment.
"""
