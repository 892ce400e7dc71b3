from controlplane.textdiff import MAX_TOKENS, Run, word_diff


def changed(runs: list[Run]) -> list[str]:
    return [run.text for run in runs if run.changed]


def test_word_diff__amount_changed__only_the_number_marked() -> None:
    left, right = word_diff("Refunds up to $500 need no approval.", "Refunds up to $250 need no approval.")

    assert (changed(left), changed(right)) == (["500"], ["250"])
    assert "".join(run.text for run in left) == "Refunds up to $500 need no approval."
    assert "".join(run.text for run in right) == "Refunds up to $250 need no approval."


def test_word_diff__word_inserted__only_the_new_side_marked() -> None:
    left, right = word_diff("Answer briefly.", "Answer briefly and politely.")

    assert (changed(left), changed(right)) == ([], [" and politely"])


def test_word_diff__equal_texts__nothing_marked() -> None:
    assert word_diff("same text", "same text") == ([Run("same text", False)], [Run("same text", False)])


def test_word_diff__multi_line_prompt__newlines_kept() -> None:
    left, right = word_diff("Line one.\nLine two.", "Line one.\nLine 2.")

    assert (changed(left), changed(right)) == (["two"], ["2"])
    assert "\n" in "".join(run.text for run in right)


def test_word_diff__past_the_token_limit__each_side_whole_and_changed() -> None:
    old, new = "a " * MAX_TOKENS, "b " * MAX_TOKENS

    assert word_diff(old, new) == ([Run(old, True)], [Run(new, True)])
