"""The one exception type for mistakes a user can fix.

A :class:`UserError` is printed by the CLI as a single line on stderr (exit
code 2), never as a traceback. Its message names the problem *and* the fix,
e.g. ``"cannot read song.xyz: unknown format (use wav, flac, ogg or mp3)"``.
"""


class UserError(Exception):
    """A problem with the user's input, files, devices or settings."""
