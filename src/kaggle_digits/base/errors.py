"""The one exception type for mistakes a user can make (bad input, missing credentials, ...).

The CLI prints its message on one line and exits with code 2; anything else is a bug.
"""


class UserError(Exception):
    """A problem the user can fix; its message says what and where."""
