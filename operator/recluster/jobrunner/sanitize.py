"""Nothing a clustering Job prints or reports carries a secret.

A Job's environment may hold secret values (the store's DSN from a Secret,
credentials of an object store, whatever the install's env adds). Its
output reaches places other tenants' operators and users read: the
termination message becomes status.last_execution_error, the history and an
Event; the log is what `kubectl logs` shows. Rules:

1. Every value of the environment that is not known to be public, and at
   least MIN_SECRET_CHARS long, is replaced by `***` wherever it appears in
   what the Job writes to stdout, stderr or its termination message. The
   store URI is public when it carries no credentials (it names the store in
   failure reasons), secret whole when it does.
2. Credentials inside a URI or a libpq conninfo are redacted
   (`store._common.redact`), whatever variable they came from.
4. The runner's own JSON (its summary and termination message) is scrubbed
   leaf by leaf (`Scrubber.data`): its strings as text, its keys and numbers
   never. They are the runner's fixed names and its counts, and a word or
   number of the environment equal to one of them (`clusters`, `status`,
   a six-digit count) must not turn `num_clusters` into `num_***`.
3. An exception the runner did not expect is reported as its type and a
   fixed sentence: its message (which may quote an input) goes to the log,
   scrubbed, never to the status.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any, TextIO

from .. import THREAD_POOL_ENVIRONMENT
from ..store._common import redact

MIN_SECRET_CHARS = 6
PUBLIC_ENV = frozenset({
    "PATH", "HOME", "HOSTNAME", "LANG", "LC_ALL", "TZ", "PWD", "OLDPWD", "TERM", "SHLVL",
    "TMPDIR", "USER", "SHELL", "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "NUMBA_CACHE_DIR", "RECLUSTER_NUMBA_CACHE_SEED", "OMP_NUM_THREADS", *THREAD_POOL_ENVIRONMENT,
    "RECLUSTER_NAMESPACE", "RECLUSTER_RUN_ID", "RECLUSTER_EXECUTION_CONFIG",
    "RECLUSTER_TERMINATION_LOG", "RECLUSTER_STORE_SCOPE", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "RECLUSTER_MAP_LAYOUT",
})  # fmt: skip
"""Set by the image, the kubelet or the operator itself (a trigger cannot set RECLUSTER_*);
RECLUSTER_MAP_LAYOUT is one of three words (a secret `clusters` turned `num_clusters` into
`num_***` in the summary)."""
PUBLIC_PREFIXES = ("KUBERNETES_",)
URI_ENV = frozenset({"RECLUSTER_STORE_URI"})
"""Public unless they carry credentials (rule 2 recognises them): then secret whole."""
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


class Scrubber:
    """Replaces secret values and URI credentials in text."""

    def __init__(self, env: Mapping[str, str]) -> None:
        values = {
            value for name, value in env.items()
            if name not in PUBLIC_ENV and not name.startswith(PUBLIC_PREFIXES)
            and len(value) >= MIN_SECRET_CHARS
            # a store URI without credentials names the store in every message
            and not (name in URI_ENV and redact(value) == value)
        }  # fmt: skip
        # longest first: a secret that contains another is replaced whole
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, "***")
        return _URI.sub(lambda m: redact(m.group(0)), text)

    def data(self, value: Any) -> Any:
        """Parsed JSON with every string scrubbed, keys and numbers kept (rule 4)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value


class ScrubbedStream(io.TextIOBase):
    """A text stream that scrubs what is written to it (sys.stdout, sys.stderr)."""

    def __init__(self, stream: TextIO, scrub: Scrubber) -> None:
        super().__init__()
        self.stream, self.scrub = stream, scrub

    def write(self, text: str) -> int:
        self.stream.write(self.scrub(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def unexpected(exc: BaseException) -> str:
    """The one-line reason of an exception the runner did not foresee: no message quoted."""
    return f"the clustering Job failed unexpectedly ({type(exc).__name__}); see the Job's log"
