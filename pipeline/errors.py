"""The user-facing error types and the exit codes they end a command with.

Anything raised as :class:`NftganError` is a user mistake or bad input that we can explain in one line;
the CLI prints it and exits with its ``exit_code``. Every other exception is a bug and may show a
traceback.

Exit codes (documented in the README):

- 0: done.
- 2: a user mistake or bad input (``NftganError``).
- 3: a scrape ended short of the collection's total supply (partial coverage; re-run to continue).
- 4: a site could not be reached: DNS, a refused connection, TLS, a timeout (``SiteUnreachable``).
- 5: a site answered but refused us: HTTP 403, a bot check, an empty page (``SiteRefused``).
- 130: interrupted (Ctrl-C).
"""

EXIT_USER_ERROR = 2
EXIT_PARTIAL = 3
EXIT_UNREACHABLE = 4
EXIT_REFUSED = 5


class NftganError(Exception):
    """A user-facing error: the message is one line that says what is wrong and what to do."""

    exit_code = EXIT_USER_ERROR


class SiteUnreachable(NftganError):
    """A host did not answer: it does not resolve, refuses connections, fails TLS or times out."""

    exit_code = EXIT_UNREACHABLE


class SiteRefused(NftganError):
    """A host answered but would not serve us: HTTP 401/403, a bot-check page, no items."""

    exit_code = EXIT_REFUSED
