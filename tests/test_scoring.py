import pytest

from tunixrt.evaluate.scoring import as_number, exact_match


@pytest.mark.parametrize(
    ("pred", "expected", "ok"),
    [
        ("42", "42", True),
        (" 42 ", "42", True),
        ("42.0", "42", True),
        ("+42", "42", True),
        ("-5", "-5", True),
        ("- 5", "-5", True),
        ("−5", "-5", True),  # unicode minus
        ("5", "-5", False),
        ("1,234", "1234", True),
        ("$31.5", "$31.5", True),
        ("31.50", "$31.5", True),
        ("42.", "42", True),
        ("43", "42", False),
        ("42 apples", "42", False),  # trailing text is not the number
        ("Paris", "paris", True),
        ("  Paris.  ", "Paris", True),
        ("red,  blue, yellow", "red, blue, yellow", True),
        ("Lyon", "Paris", False),
        (None, "42", False),  # no `Answer:` in the output
        ("", "42", False),
        ("120 km", "120 km", True),
        ("120km", "120 km", False),
    ],
)
def test_exact_match(pred: str | None, expected: str, ok: bool) -> None:
    assert exact_match(pred, expected) is ok


def test_as_number() -> None:
    assert as_number("1,234.5") == as_number("1234.50")
    assert as_number("12%") == as_number("12")
    assert as_number("1,23") is None and as_number("abc") is None and as_number("4e5") is None
