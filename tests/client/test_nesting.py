from flagstaff.nesting import render_path, too_deep


def nested(levels: int) -> object:
    """`levels` levels of alternating objects and lists, built without recursion."""
    document: object = "leaf"
    for level in range(levels):
        document = {"a": document} if level % 2 else [document]
    return document


def test_too_deep__at_the_limit__none():
    assert too_deep(nested(64), 64) is None


def test_too_deep__one_past_the_limit__path_of_the_first_container_past_it():
    assert too_deep({"x": 1, "y": [{"z": {}}]}, 2) == ["y", 0]


def test_too_deep__scalars__never_too_deep():
    assert too_deep("text", 0) is None


def test_too_deep__ten_thousand_levels__returns_without_recursion():
    path = too_deep(nested(10_000), 64)

    assert path is not None
    assert len(path) == 64


def test_render_path__keys_and_indexes__dotted_with_brackets():
    assert render_path(["tools", 2, "input_schema", "properties"]) == "tools[2].input_schema.properties"
