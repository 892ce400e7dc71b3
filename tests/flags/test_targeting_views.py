import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from controlplane.audit import Actor
from controlplane.models import AuditEntry
from flags import services
from flags.models import Environment, Flag, FlagState, Segment, Split
from tests.factories import make_environment, make_flag, make_version
from tests.pages import assert_login_redirect, logged_in, text

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
PLAN_IN_PRO = {"contextName": "plan", "operator": "IN", "values": ["pro"]}


@pytest.fixture
def environment() -> Environment:
    return make_environment(key="production")


@pytest.fixture
def flag(environment: Environment) -> Flag:
    """support-chat with v1, v2 and v3; v1 published and enabled in production."""
    flag = make_flag(key="support-chat")
    for _ in range(3):
        make_version(flag=flag)
    services.publish_version(flag=flag, environment=environment, number=1, actor=SYSTEM)
    services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=SYSTEM)
    return flag


HTMX = {"HX-Request": "true", "HX-Target": "targeting-production"}


def url(name: str, *args: Any) -> str:
    return reverse(f"flags:{name}", args=["support-chat", "production", *args])


def rules() -> list[dict[str, Any]]:
    state_rules: list[dict[str, Any]] = FlagState.objects.get(flag__key="support-chat").rules
    return state_rules


def rule_form(**data: Any) -> dict[str, Any]:
    return {"context_name": "", "operator": "IN", "values": "", "constraints": "", "version": "2", **data}


def add_rule(flag: Flag, environment: Environment, **fields: Any) -> None:
    rule: dict[str, Any] = {"constraints": [PLAN_IN_PRO], "segments": [], "version": 2, "description": ""}
    rule.update(fields)
    services.add_rule(flag=flag, environment=environment, actor=SYSTEM, **rule)


# the flag page


def test_flag_detail__rule_and_split__targeting_section_shows_both(
    editor: User, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="pro customers")
    split = services.set_split(flag=flag, environment=environment, candidate=3, weight=1000, actor=SYSTEM)

    page = text(logged_in(editor).get(reverse("flags:detail", args=["support-chat"])))

    assert 'id="targeting-production"' in page
    assert "plan is one of pro" in page
    assert "pro customers" in page
    assert "10 %" in page
    assert "control: next 10 %, served v1" in page
    assert f"{split.seed[:6]}…" in page


def test_flag_detail__two_environments__form_ids_unique(editor: User, flag: Flag) -> None:
    make_environment(key="staging")

    page = text(logged_in(editor).get(reverse("flags:detail", args=["support-chat"])))

    assert page.count('id="id_production_context"') == 1
    assert page.count('id="id_staging_context"') == 1


def test_flag_detail__viewer__try_panel_without_write_forms(viewer: User, flag: Flag) -> None:
    page = text(logged_in(viewer).get(reverse("flags:detail", args=["support-chat"])))

    assert "Try a context" in page
    assert "Add rule" not in page
    assert "Set split" not in page


def test_navigation__signed_in__links_segments(viewer: User) -> None:
    page = text(logged_in(viewer).get(reverse("flags:list")))

    assert f'href="{reverse("flags:segments")}"' in page


# the targeting page


def test_targeting__anonymous__redirects_to_login(flag: Flag) -> None:
    assert_login_redirect(Client().get(url("targeting")))


def test_targeting__viewer__page_with_section(viewer: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    response = logged_in(viewer).get(url("targeting"))

    assert response.status_code == 200
    assert "<html" in text(response)
    assert "plan is one of pro" in text(response)


def test_targeting__unknown_environment__404(viewer: User, flag: Flag) -> None:
    response = logged_in(viewer).get(reverse("flags:targeting", args=["support-chat", "nowhere"]))

    assert response.status_code == 404


# rules


def test_rule_add__row_editor__rule_saved_and_back_to_flag_page(editor: User, flag: Flag) -> None:
    form = rule_form(context_name="plan", operator="IN", values="pro, enterprise", description="paying")

    response = logged_in(editor).post(url("rule-add"), form)

    assert response.status_code == 302
    assert response["Location"] == reverse("flags:detail", args=["support-chat"]) + "#targeting-production"
    assert rules() == [
        {
            "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}],
            "segments": [],
            "version": 2,
            "description": "paying",
        }
    ]


def test_rule_add__single_value_operator_with_flags__value_kept_whole(editor: User, flag: Flag) -> None:
    form = rule_form(
        context_name="ua", operator="REGEX", values="bot{1,3}", inverted="on", case_insensitive="on"
    )

    logged_in(editor).post(url("rule-add"), form)

    assert rules()[0]["constraints"] == [
        {
            "contextName": "ua",
            "operator": "REGEX",
            "value": "bot{1,3}",
            "inverted": True,
            "caseInsensitive": True,
        }
    ]


def test_rule_add__json_and_row__json_first_then_row(editor: User, flag: Flag) -> None:
    services.create_segment(key="staff", name="", constraints=[], actor=SYSTEM)
    form = rule_form(
        constraints=json.dumps([PLAN_IN_PRO]),
        context_name="country",
        values="de",
        segments=["staff"],
        position="0",
    )

    logged_in(editor).post(url("rule-add"), form)

    [rule] = rules()
    assert [c["contextName"] for c in rule["constraints"]] == ["plan", "country"]
    assert rule["segments"] == ["staff"]


def test_rule_add__htmx__section_alone_with_notice(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(
        url("rule-add"), rule_form(context_name="plan", values="pro"), headers=HTMX
    )

    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page
    assert page.lstrip().startswith('<section class="card targeting" id="targeting-production"')
    assert "Added a rule serving v2" in page


def test_rule_add__bad_regex__error_names_path_and_nothing_saved(editor: User, flag: Flag) -> None:
    form = rule_form(context_name="ua", operator="REGEX", values="(unclosed")

    response = logged_in(editor).post(url("rule-add"), form, headers=HTMX)

    assert response.status_code == 200
    assert "constraints[0].value" in text(response)
    assert rules() == []


def test_rule_add__constraints_not_json__syntax_error_shown(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(url("rule-add"), rule_form(constraints="[{plan: pro}]"), headers=HTMX)

    assert "JSON syntax error at line 1" in text(response)
    assert rules() == []


def test_rule_add__version_not_offered__choice_error(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(url("rule-add"), rule_form(version="9"), headers=HTMX)

    assert "Select a valid choice" in text(response)
    assert rules() == []


def test_rule_add__viewer__403_and_nothing_saved(viewer: User, flag: Flag) -> None:
    response = logged_in(viewer).post(url("rule-add"), rule_form(context_name="plan", values="pro"))

    assert response.status_code == 403
    assert rules() == []


def test_rule_add__anonymous__redirects_to_login(flag: Flag) -> None:
    assert_login_redirect(Client().post(url("rule-add"), rule_form()))


def test_rule_move__first_down__order_changed(editor: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment, description="a")
    add_rule(flag, environment, description="b")

    response = logged_in(editor).post(url("rule-move", 0), {"to": "1"}, headers=HTMX)

    assert "Moved rule 1 to position 2" in text(response)
    assert [rule["description"] for rule in rules()] == ["b", "a"]


def test_rule_move__target_out_of_range__error_notice_and_order_kept(
    editor: User, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="a")

    response = logged_in(editor).post(url("rule-move", 0), {"to": "4"}, headers=HTMX)

    assert "message-error" in text(response)
    assert [rule["description"] for rule in rules()] == ["a"]


def test_rule_move__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    assert logged_in(viewer).post(url("rule-move", 0), {"to": "0"}).status_code == 403


def test_rule_remove__existing__removed(editor: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    response = logged_in(editor).post(url("rule-remove", 0))

    assert response.status_code == 302
    assert rules() == []


def test_rule_remove__rules_changed_since_the_page_loaded__refused_with_a_notice(
    editor: User, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="a")
    add_rule(flag, environment, description="b")
    client = logged_in(editor)
    page = client.get(url("targeting"), headers=HTMX).content.decode()
    shown = page.split('name="rules_tag" value="', 1)[1].split('"', 1)[0]
    client.post(url("rule-remove", 0), {"rules_tag": shown}, headers=HTMX)  # another tab removes "a"

    response = client.post(url("rule-remove", 0), {"rules_tag": shown}, headers=HTMX)

    assert "changed since you read them" in text(response)
    assert [rule["description"] for rule in rules()] == ["b"]


def test_rule_remove__missing_index__error_message(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(url("rule-remove", 3), follow=True)

    assert "has no rule 3" in text(response)


def test_rule_remove__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    assert logged_in(viewer).post(url("rule-remove", 0)).status_code == 403
    assert len(rules()) == 1


# split


def test_split_set__ten_percent__1000_basis_points_shown_on_flag_page(editor: User, flag: Flag) -> None:
    client = logged_in(editor)

    response = client.post(url("split-set"), {"candidate": "3", "percent": "10"}, follow=True)

    split = Split.objects.get()
    assert split.candidate is not None
    assert (split.candidate.number, split.weight) == (3, 1000)
    assert "v3 now serves 10 % of units" in text(response)
    assert "control: next 10 %, served v1" in text(response)


def test_split_set__new_weight__same_seed(editor: User, flag: Flag) -> None:
    client = logged_in(editor)
    client.post(url("split-set"), {"candidate": "3", "percent": "1"})
    seed = Split.objects.get().seed

    client.post(url("split-set"), {"candidate": "3", "percent": "2.5"})

    assert (Split.objects.active().get().seed, Split.objects.active().get().weight) == (seed, 250)


def test_split_set__serving_version_as_candidate__refused(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(url("split-set"), {"candidate": "1", "percent": "10"}, headers=HTMX)

    assert "Select a valid choice" in text(response)
    assert not Split.objects.exists()


def test_split_set__over_100_percent__refused(editor: User, flag: Flag) -> None:
    response = logged_in(editor).post(url("split-set"), {"candidate": "3", "percent": "101"}, headers=HTMX)

    assert "less than or equal to 100" in text(response)
    assert not Split.objects.exists()


def test_split_set__viewer__403(viewer: User, flag: Flag) -> None:
    assert logged_in(viewer).post(url("split-set"), {"candidate": "3", "percent": "10"}).status_code == 403
    assert not Split.objects.exists()


def test_split_clear__active__cleared(editor: User, flag: Flag, environment: Environment) -> None:
    services.set_split(flag=flag, environment=environment, candidate=3, weight=1000, actor=SYSTEM)

    response = logged_in(editor).post(url("split-clear"), headers=HTMX)

    assert "Split cleared" in text(response)
    assert not Split.objects.active().exists()


def test_split_clear__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    services.set_split(flag=flag, environment=environment, candidate=3, weight=1000, actor=SYSTEM)

    assert logged_in(viewer).post(url("split-clear")).status_code == 403
    assert Split.objects.active().exists()


# try a context


def test_try__rule_matches__result_names_rule_and_version(
    viewer: User, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="pro customers")
    context = json.dumps({"targetingKey": "u1", "plan": "pro"})

    page = text(logged_in(viewer).post(url("try"), {"context": context}, headers=HTMX))

    assert "TARGETING_MATCH" in page
    assert "rule 1 matched (pro customers)" in page
    assert 'href="/flags/support-chat/versions/2/">v2</a>' in page


def test_try__split__arm_and_bucket_shown(viewer: User, flag: Flag, environment: Environment) -> None:
    services.set_split(flag=flag, environment=environment, candidate=3, weight=10000, actor=SYSTEM)

    page = text(logged_in(viewer).post(url("try"), {"context": '{"targetingKey": "u1"}'}, headers=HTMX))

    assert "SPLIT" in page
    assert "<dt>Arm</dt><dd>candidate</dd>" in page
    assert "<dt>Bucket</dt>" in page


def test_try__without_javascript__targeting_page_with_result(viewer: User, flag: Flag) -> None:
    response = logged_in(viewer).post(url("try"), {"context": "{}"})

    assert response.status_code == 200
    assert "<html" in text(response)
    assert "STATIC" in text(response)


@pytest.mark.parametrize(
    ("context", "message"), [("[1, 2]", "Write a JSON object."), ("{", "JSON syntax error")]
)
def test_try__not_a_json_object__error_shown(viewer: User, flag: Flag, context: str, message: str) -> None:
    page = text(logged_in(viewer).post(url("try"), {"context": context}, headers=HTMX))

    assert message in page
    assert "Reason" not in page


def test_try__context_over_64_kib__error_shown(viewer: User, flag: Flag) -> None:
    context = json.dumps({"blob": "x" * 70_000})

    page = text(logged_in(viewer).post(url("try"), {"context": context}, headers=HTMX))

    assert "larger than 65,536 bytes" in page


def test_try__anonymous__redirects_to_login(flag: Flag) -> None:
    assert_login_redirect(Client().post(url("try"), {"context": "{}"}))


# segments


def test_segments__viewer__listed_with_users_and_no_form(
    viewer: User, flag: Flag, environment: Environment
) -> None:
    services.create_segment(key="staff", name="", constraints=[PLAN_IN_PRO], actor=SYSTEM)
    add_rule(flag, environment, segments=["staff"])

    page = text(logged_in(viewer).get(reverse("flags:segments")))

    assert "staff" in page
    assert "plan is one of pro" in page
    assert "support-chat" in page
    assert "Create segment" not in page


def test_segments__anonymous__redirects_to_login() -> None:
    assert_login_redirect(Client().get(reverse("flags:segments")))


def test_segments_create__valid__saved_and_redirected(editor: User) -> None:
    form = {"key": "staff", "name": "Staff", "description": "", "constraints": json.dumps([PLAN_IN_PRO])}

    response = logged_in(editor).post(reverse("flags:segments"), form)

    assert response.status_code == 302
    assert Segment.objects.get().constraints == [PLAN_IN_PRO]


def test_segments_create__invalid_constraint__error_with_path(editor: User) -> None:
    constraints = json.dumps([{"contextName": "v", "operator": "SEMVER_EQ", "value": "one"}])

    page = text(
        logged_in(editor).post(reverse("flags:segments"), {"key": "staff", "constraints": constraints})
    )

    assert "constraints[0].value" in page
    assert not Segment.objects.exists()


def test_segments_create__viewer__403(viewer: User) -> None:
    response = logged_in(viewer).post(reverse("flags:segments"), {"key": "staff", "constraints": "[]"})

    assert response.status_code == 403
    assert not Segment.objects.exists()


def test_segment_detail__edit_constraints__saved(editor: User) -> None:
    services.create_segment(key="staff", name="", constraints=[], actor=SYSTEM)
    form = {"name": "Staff", "description": "", "constraints": json.dumps([PLAN_IN_PRO])}

    response = logged_in(editor).post(reverse("flags:segment", args=["staff"]), form)

    assert response.status_code == 302
    assert (Segment.objects.get().name, Segment.objects.get().constraints) == ("Staff", [PLAN_IN_PRO])


def test_segment_detail__unknown_key__404(viewer: User) -> None:
    assert logged_in(viewer).get(reverse("flags:segment", args=["nobody"])).status_code == 404


def test_segment_delete__used__error_and_kept(editor: User, flag: Flag, environment: Environment) -> None:
    services.create_segment(key="staff", name="", constraints=[], actor=SYSTEM)
    add_rule(flag, environment, segments=["staff"])

    response = logged_in(editor).post(reverse("flags:segment-delete", args=["staff"]), follow=True)

    assert "support-chat in production" in text(response)
    assert Segment.objects.filter(key="staff").exists()


def test_segment_delete__unused__deleted(editor: User) -> None:
    services.create_segment(key="staff", name="", constraints=[], actor=SYSTEM)

    response = logged_in(editor).post(reverse("flags:segment-delete", args=["staff"]))

    assert (response.status_code, Segment.objects.exists()) == (302, False)


def test_segment_delete__viewer__403(viewer: User) -> None:
    services.create_segment(key="staff", name="", constraints=[], actor=SYSTEM)

    assert logged_in(viewer).post(reverse("flags:segment-delete", args=["staff"])).status_code == 403
    assert Segment.objects.exists()


# protected environments, rules for everyone, editing a rule


def protect(environment: Environment) -> None:
    Environment.objects.filter(pk=environment.pk).update(protected=True)


def test_rule_add__protected_environment__confirmation_page_and_nothing_changed(editor, flag, environment):
    protect(environment)

    response = logged_in(editor).post(url("rule-add"), rule_form(context_name="plan", values="pro"))

    assert response.status_code == 200
    body = text(response)
    assert "Confirm a change to production" in body
    assert "Add a rule serving v2" in body
    assert 'name="context_name" value="plan"' in body
    assert rules() == []


def test_rule_add__protected_confirmed_without_reason__asked_again(editor, flag, environment):
    protect(environment)

    response = logged_in(editor).post(
        url("rule-add"), rule_form(context_name="plan", values="pro", confirmed="1", reason=" ")
    )

    assert "Give a reason: production is a protected environment." in text(response)
    assert rules() == []


def test_rule_add__protected_confirmed_with_reason__added_and_reason_audited(editor, flag, environment):
    protect(environment)

    response = logged_in(editor).post(
        url("rule-add"), rule_form(context_name="plan", values="pro", confirmed="1", reason="pro launch")
    )

    assert response.status_code == 302
    assert [rule["version"] for rule in rules()] == [2]
    assert AuditEntry.objects.get(action="rule.added").reason == "pro launch"


def test_rule_add__no_condition__refused_with_the_everyone_hint(editor, flag):
    response = logged_in(editor).post(url("rule-add"), rule_form(), headers=HTMX)

    assert "mark the rule 'everyone'" in text(response)
    assert rules() == []


def test_rule_add__everyone_ticked__catch_all_rule_added(editor, flag):
    logged_in(editor).post(url("rule-add"), rule_form(everyone="on"), headers=HTMX)

    assert rules() == [{"constraints": [], "segments": [], "version": 2, "description": "", "everyone": True}]


def test_targeting__protected_environment__write_forms_post_as_pages(editor, flag, environment):
    protect(environment)

    body = text(logged_in(editor).get(reverse("flags:detail", args=["support-chat"])))

    assert "protected" in body
    assert f'hx-post="{url("rule-add")}"' not in body
    assert f'hx-post="{url("try")}"' in body


def add_pro_rule(flag: Flag, environment: Environment) -> None:
    services.add_rule(
        flag=flag,
        environment=environment,
        constraints=[PLAN_IN_PRO],
        segments=[],
        version=2,
        description="pro",
        actor=SYSTEM,
    )


def test_rule_edit__get__form_holds_the_rule(editor, flag, environment):
    add_pro_rule(flag, environment)

    body = text(logged_in(editor).get(url("rule-edit", 0)))

    assert '"contextName": "plan"' in body
    assert 'value="pro"' in body


def test_rule_edit__post__rule_changed_in_place(editor, flag, environment):
    add_pro_rule(flag, environment)

    response = logged_in(editor).post(
        url("rule-edit", 0),
        rule_form(constraints=json.dumps([PLAN_IN_PRO]), version="3", description="pro gets v3"),
    )

    assert response.status_code == 302
    assert [(rule["version"], rule["description"]) for rule in rules()] == [(3, "pro gets v3")]


def test_rule_edit__no_such_rule__404(editor, flag):
    assert logged_in(editor).get(url("rule-edit", 0)).status_code == 404


def test_rule_edit__viewer__forbidden(viewer, flag):
    assert logged_in(viewer).get(url("rule-edit", 0)).status_code == 403
