from datetime import date

import pytest

from deprecations.pinning import date_pinning, unpinned_in_production
from flags import services as flag_services
from flags.validation import ValidationResult, catalog_by_id, load_seed, validate_config
from tests.deprecations.factories import content, serve
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version

CATALOG = catalog_by_id(load_seed())


def validate(model: str) -> ValidationResult:
    return validate_config(
        content(model), catalog=CATALOG, surface="chat", today=date(2026, 12, 5), max_depth=64
    )


def test_validation__alias_of_pre_4_6_model__warning_names_the_dated_id() -> None:
    [warning] = [
        issue for issue in validate("claude-haiku-4-5").warnings if issue.code == "model_alias_not_pinned"
    ]

    assert warning.path == "model"
    assert "'claude-haiku-4-5' is an alias of 'claude-haiku-4-5-20251001'" in warning.message


def test_validation__alias_of_a_deprecated_model__deprecation_and_pinning_warnings() -> None:
    codes = [issue.code for issue in validate("claude-sonnet-4-5").warnings]

    assert codes == ["model_deprecated", "model_alias_not_pinned"]


@pytest.mark.parametrize("model", ["claude-haiku-4-5-20251001", "claude-opus-5-5"])
def test_validation__dated_or_fixed_id__no_pinning_warning(model: str) -> None:
    assert "model_alias_not_pinned" not in {issue.code for issue in validate(model).warnings}


@pytest.mark.django_db
def test_date_pinning__alias_served_in_the_environment__found_with_the_dated_id() -> None:
    served = serve("claude-haiku-4-5")

    [unpinned] = date_pinning(flag=served.flag, environment=served.environment)

    assert (unpinned.exposure.used_as, unpinned.pinned_id, unpinned.exposure.place) == (
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "serving",
    )


@pytest.mark.django_db
def test_date_pinning__dated_id__nothing_to_pin() -> None:
    served = serve("claude-haiku-4-5-20251001")

    assert date_pinning(flag=served.flag, environment=served.environment) == []


@pytest.mark.django_db
def test_unpinned_in_production__only_protected_environments() -> None:
    protected, staging = make_environment(protected=True), make_environment()
    flag = make_flag()
    make_version(flag=flag, content=content("claude-opus-4-5"))
    flag_services.publish_version(
        flag=flag, environment=protected, number=1, actor=FACTORY_ACTOR, reason="go"
    )
    flag_services.publish_version(flag=flag, environment=staging, number=1, actor=FACTORY_ACTOR)

    assert [(u.exposure.environment, u.pinned_id) for u in unpinned_in_production()] == [
        (protected.key, "claude-opus-4-5-20251101")
    ]
