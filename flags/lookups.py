"""Lookups by key that raise the API's 404 error; used by every API and UI view."""

from controlplane.errors import NotFound
from flags.models import ConfigVersion, Environment, Flag, Segment


def get_flag(key: str) -> Flag:
    try:
        return Flag.objects.get(key=key)
    except Flag.DoesNotExist:
        raise NotFound(f"No flag with key '{key}'.") from None


def get_environment(key: str) -> Environment:
    try:
        return Environment.objects.get(key=key)
    except Environment.DoesNotExist:
        raise NotFound(f"No environment with key '{key}'.") from None


def get_version(flag: Flag, number: int) -> ConfigVersion:
    try:
        return ConfigVersion.objects.get(flag=flag, number=number)
    except ConfigVersion.DoesNotExist:
        raise NotFound(f"Flag '{flag.key}' has no version {number}.") from None


def get_segment(key: str) -> Segment:
    try:
        return Segment.objects.get(key=key)
    except Segment.DoesNotExist:
        raise NotFound(f"No segment with key '{key}'.") from None
