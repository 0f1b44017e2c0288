"""Developer sessions: `nox -s lint`, `nox -s tests`."""

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("bash", ".ci/install-emulators.sh", external=True)
    session.run("pytest", "-q", *session.posargs)
