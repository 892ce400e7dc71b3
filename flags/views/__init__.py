"""Pages of the flags app (HTML/htmx function-based views), one submodule per part:

- `flags`: the flag list, creating flags and environments, a flag's page.
- `publishing`: publishing a version in an environment, enabling or disabling the flag there.
- `versions`: the version editor and a version's page.
- `version_diff`: the diff page between two versions.
- `catalog`: the model catalog page.
- `targeting`: a flag's targeting per environment: rules, the split, trying a context.
- `segments`: the segment list and pages.
- `constraints`: constraints as phrases, shared by targeting and segments.
- `access`: the write-access checks the pages share.
- `json_text`: JSON values as indented text.
"""
