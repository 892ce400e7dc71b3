"""Dockerfile and docker-compose.yml, checked without Docker (not on this machine): what the
image copies and installs, and what the services run and are configured with."""

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_copies() -> set[str]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    return {line.split()[1] for line in lines if line.startswith("COPY ")}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def pip_packages() -> set[str]:
    """The top-level packages `pip install .` installs (pyproject's packages.find)."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return {pattern.rstrip("*") for pattern in include["include"]}


def documented_variables() -> set[str]:
    table_rows = re.findall(r"^\| `([A-Z0-9_]+)`", (ROOT / "README.md").read_text(), re.MULTILINE)
    return set(table_rows)


def test_dockerfile__copies_every_package_pip_installs_and_what_runs_beside_them() -> None:
    packages = pip_packages()

    assert packages | {"pyproject.toml", "client", "templates", "static", "manage.py"} <= dockerfile_copies()
    assert all((ROOT / copied).exists() for copied in dockerfile_copies())


def test_pyproject__packages_include_every_local_django_app() -> None:
    packages = pip_packages()
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()}

    assert local_apps <= packages


def test_compose__the_control_plane_services_and_their_dependencies() -> None:
    services = compose()["services"]

    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in services[name]


def test_compose__every_app_variable_is_documented_in_readme() -> None:
    app_environment = compose()["x-app"]["environment"]

    assert set(app_environment) <= documented_variables()


@pytest.mark.parametrize("where", ["compose", "dockerfile"])
def test_web_command__gunicorn_with_the_project_config(where: str) -> None:
    if where == "compose":
        shell, flag, script = shlex.split(compose()["services"]["web"]["command"])
        assert (shell, flag) == ("sh", "-c")
        argv = shlex.split(script.split("&&")[-1])
    else:
        cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
        argv = yaml.safe_load(cmd.removeprefix("CMD "))

    assert argv[:2] == ["gunicorn", "controlplane.wsgi:application"]
    config = argv[argv.index("--config") + 1]
    assert (ROOT / config).is_file()
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000"


def test_compose__web_healthcheck_path_is_served() -> None:
    healthcheck = " ".join(compose()["services"]["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[^']*)", healthcheck)

    assert path is not None
    assert resolve(path.group(1)).url_name == "healthz"
