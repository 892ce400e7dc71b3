import pytest

from flagstaff.flag_state import FlagState, FlagStateError


def test_flag_state__round_trip__keeps_every_field():
    state = FlagState("production", "support-chat", 7, "control", "r12", 1043)

    assert FlagState.decode(state.encode()) == state


def test_flag_state__empty_fields__encode_as_dash():
    state = FlagState("staging", "typing", None, None, None, 3)

    assert state.encode() == "fs1:staging:typing:-:-:-:3"


@pytest.mark.parametrize(
    "token",
    ["", "fs1:a:b:1:-:-", "fs2:a:b:1:-:-:1", "fs1::b:1:-:-:1", "fs1:a:b:x:-:-:1", "fs1:a:b:1:-:-:rev"],
)
def test_flag_state__malformed__raises(token):
    with pytest.raises(FlagStateError):
        FlagState.decode(token)


def test_flag_state__not_a_string__raises():
    with pytest.raises(FlagStateError):
        FlagState.decode(42)  # type: ignore[arg-type]
