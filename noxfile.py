"""Developer sessions: `nox -s lint`, `nox -s tests`, `nox -s soak`."""

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff", "mypy", "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")  # settings in pyproject.toml: strict on the public API


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("bash", ".ci/install-emulators.sh", external=True)
    session.run("pytest", "-q", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Kill runtimes and tasks at random instants many times (``nox -s soak -- 500``)."""
    session.install("-e", ".[dev]")
    kills = session.posargs[0] if session.posargs else "200"
    session.run(
        "pytest",
        "-q",
        "-s",
        "tests/test_soak.py",
        env={"METAFLOWLIKE_SOAK_KILLS": kills},
    )
