import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from deprecations.exposures import WatchedModel, runway


class Command(BaseCommand):
    help = "Every retiring, retired or legacy model in use: its runway, exposures and usage by API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="One JSON document (as /api/v1/deprecations/)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        watched = runway(today=today)
        if options["json"]:
            document = {"as_of": today, "models": [model.as_dict() for model in watched]}
            self.stdout.write(json.dumps(document, cls=DjangoJSONEncoder, indent=2))
            return
        self.stdout.write(f"Deprecation report, {today.isoformat()}")
        if not watched:
            self.stdout.write("No flag or API key uses a retired, deprecated, retiring or legacy model.")
        for model in watched:
            self.stdout.write("")
            self.stdout.write("\n".join(_model_lines(model)))


def _model_lines(model: WatchedModel) -> list[str]:
    lifecycle = "legacy" if model.legacy else model.lifecycle
    severity = f", {model.severity}" if model.severity else ""
    replacement = f"; replacement {model.replacement}" if model.replacement else ""
    lines = [f"{model.id} ({lifecycle}{severity}): {model.runway}{replacement}"]
    if not model.exposures:
        lines.append("  used by no flag")
    for e in model.exposures:
        where = f"{e.flag} @ {e.environment}" if e.environment else e.flag
        alias = f" as {e.used_as}" if e.used_as != e.model else ""
        traffic = "live" if e.live else "not live"
        lines.append(f"  {where}: {e.place_label} v{e.version} {e.path}{alias} ({e.detail}; {traffic})")
    for row in model.usage:
        key = row.api_key_id or "Console (no key)"
        outside = "" if row.in_flags else ", outside Flagstaff's flags"
        lines.append(
            f"  API key {key} (workspace {row.workspace_id or 'default'}): {row.input_tokens:,} input, "
            f"{row.output_tokens:,} output tokens, last {row.last_used_at:%Y-%m-%d}{outside}"
        )
    return lines
