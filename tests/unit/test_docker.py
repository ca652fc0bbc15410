"""The Docker path (``docker/``), checked without a Docker engine: the compose file, the Dockerfile,
its ignore file and the example settings, against each other, ``setup.cfg`` and the README.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
#: A required variable: ``${NAME:?message}`` (compose stops when NAME is unset or empty).
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*):\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments left out."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def _install_command() -> str:
    """The ``pip install -e ".[...]"`` command of the Dockerfile (exactly one)."""
    commands = [
        match.group(0)
        for instruction, arguments in _instructions(DOCKERFILE)
        if instruction == "RUN"
        for match in re.finditer(r'pip install -e "\.\[[\w,-]+\]"', arguments)
    ]
    assert len(commands) == 1, commands
    return commands[0]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker's build leaves out ``path`` (relative, '/'-separated) or a directory above it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        core = pattern[3:] if anywhere else pattern
        for candidate in candidates:
            names = candidate.split("/")
            tails = ["/".join(names[i:]) for i in range(len(names))] if anywhere else [candidate]
            if any(fnmatch.fnmatchcase(tail, core) for tail in tails):
                return True
    return False


def test_database_is_mysql_8_configured_for_datajoint(compose):
    db = compose["services"]["db"]
    assert db["image"] == "mysql:8.0"
    command = db["command"] if isinstance(db["command"], list) else shlex.split(db["command"])
    assert "--character-set-server=utf8mb4" in command
    assert "--collation-server=utf8mb4_bin" in command
    check = db["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert "mysqladmin ping" in " ".join(check["test"][1:])
    assert "--host=127.0.0.1" in " ".join(check["test"][1:]), "over TCP: the image's first, socket-only start is not up"
    assert check["retries"] >= 3
    assert any(volume.endswith(":/var/lib/mysql") for volume in db["volumes"])


def test_secrets_come_only_from_variables(compose):
    services = compose["services"]
    secrets = {
        (service, name): value
        for service, settings in services.items()
        for name, value in settings.get("environment", {}).items()
        if re.search(r"PASS|TOKEN|SECRET", name)
    }
    assert set(secrets) == {
        ("db", "MYSQL_ROOT_PASSWORD"), ("jupyter", "DJ_PASS"), ("jupyter", "JUPYTER_TOKEN"), ("web", "DJ_PASS")
    }  # fmt: skip
    names = {key: REQUIRED.match(str(value)) for key, value in secrets.items()}
    assert all(names.values()), f"not a required ${{VARIABLE:?...}}: {[k for k, m in names.items() if not m]}"
    # DataJoint logs in with the password MySQL was given
    assert names["jupyter", "DJ_PASS"]["name"] == names["db", "MYSQL_ROOT_PASSWORD"]["name"]
    assert names["web", "DJ_PASS"]["name"] == names["db", "MYSQL_ROOT_PASSWORD"]["name"]


@pytest.mark.parametrize("service", ["jupyter", "web"])
def test_jupyter_and_web_are_built_from_the_dockerfile_and_wait_for_the_database(compose, service):
    jupyter = compose["services"][service]
    build = jupyter["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert jupyter["depends_on"] == {"db": {"condition": "service_healthy"}}
    settings = jupyter["environment"]
    assert settings["DJ_HOST"] in compose["services"]
    assert (settings["DJ_BACKEND"], str(settings["DJ_PORT"])) == ("mysql", "3306")
    assert settings["DJ_USER"] == "root"  # whose password is MYSQL_ROOT_PASSWORD (see above)


def test_ports_are_bound_to_this_machine_only(compose):
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert set(published) == {"db", "jupyter", "web"}
    container_ports = {"db": "3306", "jupyter": "8888", "web": "8000"}
    for name, ports in published.items():
        (port,) = ports
        host, _, rest = str(port).partition(":")
        assert host == "127.0.0.1", port
        assert rest.rsplit(":", 1)[1] == container_ports[name], port


def test_dockerfile_installs_with_the_readme_command():
    command = _install_command()
    extras = re.search(r"\[([\w,-]+)\]", command).group(1).split(",")
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    defined = set(setup["options.extras_require"])
    assert set(extras) <= defined, f"extras {sorted(set(extras) - defined)} are not in setup.cfg"
    assert command in (ROOT / "README.md").read_text(), f"the README does not give {command!r}"
    assert command in (DOCKER / "README.md").read_text()


def test_dockerfile_serves_the_tutorial_with_jupyter_on_8888():
    instructions = _instructions(DOCKERFILE)
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    assert ("EXPOSE", "8888 8000") in instructions
    (cmd,) = [arguments for instruction, arguments in instructions if instruction == "CMD"]
    argv = yaml.safe_load(cmd)  # the exec form is a JSON list
    assert argv[:2] == ["jupyter", "lab"]
    assert "--port=8888" in argv and "--ip=0.0.0.0" in argv
    # it opens the tutorial, a path below the working directory, where the repository was copied
    layout = [(instruction, arguments.split()[-2:]) for instruction, arguments in instructions]
    workdir = [i for i, (instruction, _) in enumerate(layout) if instruction == "WORKDIR"]
    assert workdir and layout[workdir[-1] + 1] == ("COPY", [".", "."])
    (url,) = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--LabApp.default_url=")]
    assert url.startswith("/lab/tree/") and (ROOT / url.removeprefix("/lab/tree/")).is_file(), url
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "JupyterLab does not run as root"


def test_web_serves_on_all_of_the_containers_addresses_at_8000(compose):
    command = compose["services"]["web"]["command"]
    assert command[:2] == ["element-session", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (inside the container; published on 127.0.0.1)
    assert command[command.index("--port") + 1] == "8000"


def test_image_leaves_out_local_state_and_secrets():
    patterns = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "this matcher knows no exceptions"
    for path in (".git/config", ".venv/bin/python", ".localdb/mysql/password", ".secrets/database.password",
                 "datajoint.json", "docker/.env", "element_session/__pycache__/x.pyc"):  # fmt: skip
        assert _ignored(path, patterns), path
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    kept = [path for path in tracked if not _ignored(path, patterns)]
    for needed in ("setup.cfg", "pyproject.toml", "README.md", "element_session/__init__.py",
                   "workflow/pipeline.py", "workflow/data/sessions.csv", "notebooks/tutorial.ipynb"):  # fmt: skip
        assert needed in kept, needed


def test_env_example_names_every_variable_and_no_secret():
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    example = dict(
        line.split("=", 1) for line in (DOCKER / "env.example").read_text().splitlines() if re.match(r"^[A-Z]", line)
    )
    assert used <= set(example), f"missing in env.example: {sorted(used - set(example))}"
    required = {m.group(1) for m in re.finditer(r"\$\{([A-Z][A-Z0-9_]*):\?", text)}
    assert required == {"MYSQL_ROOT_PASSWORD", "JUPYTER_TOKEN"}
    assert all(example[name] == "" for name in required), "env.example must not ship a password or token"
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT)
    assert ignored.returncode == 0, "docker/.env (with the passwords) must be ignored by git"
