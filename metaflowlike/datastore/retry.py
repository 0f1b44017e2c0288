"""Retry with exponential backoff, shared by the cloud storage backends.

Each cloud SDK already retries single HTTP requests, but each one leaves gaps (a
refused connection while an SDK is between retries, an error in the middle of a
multipart transfer that the SDK reports instead of resuming, a throttled listing...).
The backends therefore configure their SDK for a *short* per-request retry and wrap
every whole operation in :class:`RetryPolicy`, which owns the user-visible policy:

* ``METAFLOWLIKE_STORAGE_RETRIES`` attempts per operation (default 5);
* exponential backoff with jitter between them, so that a persistent outage fails
  after roughly 20-30 s in total instead of hanging a run for minutes;
* a final :class:`StorageError` that names the backend, the URL and the operation and
  never contains a credential.

This module is pure Python: it imports no SDK, the backends pass in the knowledge of
which of their exceptions are transient.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from .storage import StorageError, StorageUnreachable

T = TypeVar("T")

ENV_ATTEMPTS = "METAFLOWLIKE_STORAGE_RETRIES"
DEFAULT_ATTEMPTS = 5
#: attempts the SDKs make *inside* one of our attempts (capped by ours)
SDK_ATTEMPTS = 3

#: credential-bearing fields (URL query parameters, connection-string fields, headers);
#: group 1 is kept, the value after it is replaced
_SECRET_PATTERNS = [
    re.compile(
        r"(?i)\b((?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
        r"x-goog-signature|x-goog-credential|access_token|refresh_token)=)[^&\s;\"'<>]+"
    ),
    re.compile(r"(?i)\b((?:AccountKey|SharedAccessSignature|SharedAccessKey|Password)=)[^;\s\"']+"),
    re.compile(
        r"(?i)((?:authorization|x-amz-security-token|x-ms-copy-source-authorization)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\r\n\"',}]+"
    ),
]


def attempts_from_env(default: int = DEFAULT_ATTEMPTS) -> int:
    """The number of attempts per storage operation, from ``METAFLOWLIKE_STORAGE_RETRIES``."""
    raw = os.environ.get(ENV_ATTEMPTS, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(f"{ENV_ATTEMPTS} must be a whole number of attempts >= 1, not {raw!r}.")
    return value


def sdk_attempts(attempts: int) -> int:
    """Attempts an SDK may make per HTTP request when we make ``attempts`` ourselves."""
    return max(1, min(SDK_ATTEMPTS, attempts))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials removed: known secret values and secret-looking fields."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


def describe(exc: BaseException, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """A one-line, secret-free reason for ``exc`` suitable for an error message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # SDKs put the essential part first and request ids, XML bodies... after it
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    code = getattr(exc, "error_code", None)  # Azure's precise reason
    if isinstance(code, str) and code and code not in text:
        text += f" ({code})"
    text = redact(text, secrets)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


@dataclass
class RetryPolicy:
    """How one backend retries its operations.

    ``is_transient(exc)`` says whether an exception is worth another attempt.
    ``FileNotFoundError`` always passes through untouched (a missing object is an
    answer, not a failure); everything else ends as a :class:`StorageError`.
    """

    backend: str
    is_transient: Callable[[BaseException], bool]
    attempts: int = field(default_factory=attempts_from_env)
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: stop retrying once this many seconds have passed since the first failure
    max_retry_time: float = 30.0
    secrets: Callable[[], Iterable[str]] = lambda: ()
    sleep: Callable[[float], None] = time.sleep

    def delay(self, failures: int) -> float:
        """Backoff before the attempt following ``failures`` failures ("equal jitter")."""
        d = min(self.max_delay, self.base_delay * (2 ** (failures - 1)))
        return d / 2 + random.uniform(0, d / 2)

    def error(self, op: str, url: str, exc: BaseException, tries: int) -> StorageError:
        reason = describe(exc, self.secrets())
        after = f" after {tries} attempts" if tries > 1 else ""
        kind = StorageUnreachable if self.is_transient(exc) else StorageError
        err = kind(f"{self.backend} datastore: cannot {op} {url}{after}: {reason}")
        err.__dict__["original"] = exc  # for debugging; not chained so tracebacks print no secrets
        return err

    def call(self, op: str, url: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` until it succeeds, fails for good or the attempts run out.

        ``op`` is a verb phrase ("upload", "list") and ``url`` the object's URL; both
        end up in the error message."""
        started = None
        tries = 0
        while True:
            tries += 1
            try:
                return fn()
            except FileNotFoundError:
                raise
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                now = time.monotonic()
                started = started or now
                if (
                    not self.is_transient(exc)
                    or tries >= self.attempts
                    or now - started > self.max_retry_time
                ):
                    raise self.error(op, url, exc, tries) from None
                self.sleep(self.delay(tries))


# --- classification helpers the backends share -------------------------------------

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_os_error(exc: BaseException) -> bool:
    """Connection refused/reset/aborted, broken pipe, timeouts: the network blinked."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and _net_errno(exc)
    )


def _net_errno(exc: OSError) -> bool:
    import errno

    return exc.errno in {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETRESET,
    }


def chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and the exceptions it was raised from / during (SDKs wrap a lot)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
