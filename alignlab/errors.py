"""The one exception type alignlab raises for bad input.

Every boundary (config validation, dataset loading, model resolution) raises
:class:`AlignLabError` with a message naming the field, the bad value and what is
expected, so the CLI and both UIs can show it as one line instead of a traceback.
"""


class AlignLabError(ValueError):
    """Bad input to alignlab: the message says which field, what was given and what is expected."""


class AlignLabWarning(UserWarning):
    """Input that works but likely not as meant (pairs with chosen == rejected, prompts that fill max_length):
    the message says what was found, how often, and what to change."""
