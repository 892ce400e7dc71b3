"""The `flag_state` token: which config a call was served, logged with the call.

Every resolution returns one; telemetry carries it back so calls are attributed to the exact
environment, flag, version, arm and split (rollout or experiment) that served them.
Format (keys are slugs, so ':' never appears inside a field):

    fs1:<environment>:<flag>:<version or ->:<arm or ->:<split id or ->:<revision>
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "fs1"
_EMPTY = "-"


class FlagStateError(ValueError):
    """A token that is not a well-formed flag_state."""


@dataclass(frozen=True, slots=True)
class FlagState:
    environment: str
    flag: str
    version: int | None
    arm: str | None
    split_id: str | None
    revision: int

    def encode(self) -> str:
        fields = (
            PREFIX,
            self.environment,
            self.flag,
            _EMPTY if self.version is None else str(self.version),
            self.arm or _EMPTY,
            self.split_id or _EMPTY,
            str(self.revision),
        )
        return ":".join(fields)

    @classmethod
    def decode(cls, token: str) -> FlagState:
        if not isinstance(token, str):
            raise FlagStateError("flag_state must be a string")
        parts = token.split(":")
        if len(parts) != 7 or parts[0] != PREFIX:
            raise FlagStateError(f"flag_state must look like '{PREFIX}:env:flag:version:arm:split:revision'")
        _, environment, flag, version, arm, split_id, revision = parts
        if not environment or not flag:
            raise FlagStateError("flag_state names no environment or flag")
        try:
            version_number = None if version == _EMPTY else int(version)
            revision_number = int(revision)
        except ValueError:
            raise FlagStateError("flag_state version and revision must be whole numbers") from None
        return cls(
            environment=environment,
            flag=flag,
            version=version_number,
            arm=None if arm == _EMPTY else arm,
            split_id=None if split_id == _EMPTY else split_id,
            revision=revision_number,
        )
