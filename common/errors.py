"""The one exception type for bad user input.

Every layer raises `InputError` when what a user gave cannot work; its message names the input and the fix.
The CLI prints such errors without a traceback; anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """A user-facing error: the input named in the message is wrong, and the message says how to fix it."""
