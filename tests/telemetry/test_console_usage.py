from datetime import date

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from controlplane.audit import Actor
from controlplane.errors import InvalidInput, TooLarge
from controlplane.models import AuditEntry
from flags.catalog import seed_catalog
from telemetry.console_usage import MAX_BYTES, REQUIRED_COLUMNS
from telemetry.models import ConsoleUsage, ConsoleUsageImport
from telemetry.services.console_usage import import_console_usage
from telemetry.usage_review import exposed_usage, last_usage_review

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
HEADER = ",".join(REQUIRED_COLUMNS) + ",usage_input_tokens_cache_read"
GOOD = (
    f"{HEADER}\n"
    "2026-11-01,claude-sonnet-4-5-20250929,key-checkout,wrk-shop,1000,200,50\n"
    "2026-11-02,claude-sonnet-4-5-20250929,key-checkout,wrk-shop,3000,400,0\n"
    "2026-11-02,claude-sonnet-5-5,key-search,,500,100,\n"
    "2026-11-03,claude-sonnet-4-5,,wrk-lab,10,1,0\n"
)


@pytest.fixture(autouse=True)
def _catalog() -> None:
    seed_catalog()


def test_import__good_export__usage_per_key_and_model_summed_and_audited() -> None:
    imported = import_console_usage(filename="usage.csv", data=GOOD.encode(), actor=ACTOR)

    assert (imported.rows, imported.period_start, imported.period_end) == (
        4,
        date(2026, 11, 1),
        date(2026, 11, 3),
    )
    checkout = ConsoleUsage.objects.get(usage_import=imported, api_key="key-checkout")
    assert (checkout.input_tokens, checkout.output_tokens, checkout.cache_read_tokens, checkout.rows) == (
        4000,
        600,
        50,
        2,
    )
    assert ConsoleUsage.objects.filter(usage_import=imported).count() == 3
    assert AuditEntry.objects.filter(action="console_usage.imported", target_id=str(imported.pk)).exists()


def test_exposed_usage__keys_on_deprecated_models__listed_with_days_left_and_active_ones_left_out() -> None:
    imported = import_console_usage(filename="usage.csv", data=GOOD.encode(), actor=ACTOR)

    rows = exposed_usage(imported, today=date(2026, 11, 20))

    assert [(r.api_key, r.workspace, r.model, r.days_left) for r in rows] == [
        ("", "wrk-lab", "claude-sonnet-4-5", 10),
        ("key-checkout", "wrk-shop", "claude-sonnet-4-5-20250929", 10),
    ]
    assert rows[1].replacement == "claude-sonnet-5-5"


def test_last_usage_review__after_two_imports__the_latest() -> None:
    assert last_usage_review() is None
    import_console_usage(filename="october.csv", data=GOOD.encode(), actor=ACTOR)
    latest = import_console_usage(filename="november.csv", data=GOOD.encode(), actor=Actor.system("alice"))

    review = last_usage_review()

    assert review is not None
    assert (review.filename, review.by, review.import_id) == ("november.csv", "alice", latest.pk)


def test_import__malformed_rows__every_line_named_and_nothing_imported() -> None:
    data = (
        f"{HEADER}\n"
        "2026-11-01,claude-sonnet-5-5,key-a,w,10,1,0\n"
        "yesterday,claude-sonnet-5-5,key-a,w,10,1,0\n"
        "2026-11-01,claude-sonnet-9-9,key-a,w,10,1,0\n"
        "2026-11-01,claude-sonnet-5-5,key-a,w,-3,1,0\n"
        "2026-11-01,claude-sonnet-5-5,key-a\n"
    )

    with pytest.raises(InvalidInput) as refused:
        import_console_usage(filename="bad.csv", data=data.encode(), actor=ACTOR)

    assert refused.value.code == "invalid_rows"
    paths = [error["path"] for error in refused.value.errors]
    assert paths == [
        "line 3, usage_date_utc",
        "line 4, model_version",
        "line 5, usage_input_tokens_no_cache",
        "line 6",
    ]
    assert "claude-sonnet-9-9" in refused.value.errors[1]["message"]
    assert not ConsoleUsageImport.objects.exists()
    assert not ConsoleUsage.objects.exists()


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty_file", "empty"),
        (f"{HEADER}\n".encode(), "empty_file", "no usage rows"),
        (
            b"date,model,cost\n2026-11-01,claude-sonnet-5-5,3\n",
            "unexpected_columns",
            "columns we do not read: date",
        ),
        (b"\xff\xfe\x00bad", "not_csv", "UTF-8"),
    ],
)
def test_import__not_an_export__refused_with_the_reason(data: bytes, code: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        import_console_usage(filename="x.csv", data=data, actor=ACTOR)

    assert refused.value.code == code
    assert words in refused.value.detail
    assert not ConsoleUsageImport.objects.exists()


def test_import__over_20_mib__refused_as_too_large() -> None:
    with pytest.raises(TooLarge) as refused:
        import_console_usage(filename="big.csv", data=GOOD.encode() + b" " * MAX_BYTES, actor=ACTOR)

    assert "20 MiB" in refused.value.detail


def test_console_page__editor_uploads__redirected_and_the_exposed_key_shown(
    client: Client, editor: User
) -> None:
    client.force_login(editor)

    response = client.post(
        reverse("usage:console"), {"export": SimpleUploadedFile("usage.csv", GOOD.encode())}
    )
    page = client.get(reverse("usage:console"))

    assert response.status_code == 302
    assert b"key-checkout" in page.content
    assert b"usage.csv" in page.content


def test_console_page__bad_upload__400_with_line_numbers(client: Client, editor: User) -> None:
    client.force_login(editor)
    data = f"{HEADER}\n2026-11-01,claude-nope,key,w,1,1,0\n".encode()

    response = client.post(reverse("usage:console"), {"export": SimpleUploadedFile("bad.csv", data)})

    assert response.status_code == 400
    assert b"line 2, model_version" in response.content
    assert not ConsoleUsageImport.objects.exists()


def test_console_page__viewer_posts__refused(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.post(
        reverse("usage:console"), {"export": SimpleUploadedFile("usage.csv", GOOD.encode())}
    )

    assert response.status_code == 403
    assert not ConsoleUsageImport.objects.exists()


def test_console_page__anonymous__redirected_to_login(client: Client) -> None:
    assert client.get(reverse("usage:console")).status_code == 302
