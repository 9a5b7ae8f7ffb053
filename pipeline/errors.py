"""The one user-facing error type.

Anything raised as :class:`NftganError` is a user mistake or bad input that we can explain in one line;
the CLI prints it and exits with code 2. Every other exception is a bug and may show a traceback.
"""


class NftganError(Exception):
    """A user-facing error: the message is one line that says what is wrong and what to do."""
