import pytest

from flagstaff.api_keys import api_key_paths, looks_like_api_key, redact

KEY = "sk-ant-api03-" + "Ab3_x-9" * 12
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


@pytest.mark.parametrize("char", ZERO_WIDTH)
def test_looks_like_api_key__format_character_inside__detected(char):
    assert looks_like_api_key(KEY[:10] + char + KEY[10:])


def test_looks_like_api_key__full_width_letters__detected():
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in KEY)

    assert looks_like_api_key(full_width)


def test_looks_like_api_key__prose_about_keys__not_a_key():
    assert not looks_like_api_key("Keys start with sk-ant- and are kept in the secret store.")


def test_api_key_paths__key_split_across_system_blocks__reported_at_the_list():
    system = [{"type": "text", "text": "Use " + KEY[:15]}, {"type": "text", "text": KEY[15:] + " for it."}]

    assert api_key_paths({"system": system}) == [["system"]]


def test_api_key_paths__key_split_across_list_values__reported_at_the_list():
    assert api_key_paths({"values": [KEY[:20], KEY[20:]]}) == [["values"]]


def test_api_key_paths__key_in_one_value__reported_at_that_value_only():
    assert api_key_paths({"values": ["pro", KEY]}) == [["values", 1]]


def test_api_key_paths__key_as_object_key__reported_at_the_object():
    assert api_key_paths({"configs": {KEY: {}}}) == [["configs"]]


def test_redact__hidden_key__replaced():
    assert redact("use " + KEY[:12] + "\u200b" + KEY[12:]) == "use <redacted>"
