"""The base of the errors meant for the user: their one line names the file, set, param or stage and says what to
do, so the runner records and prints that line without a traceback (a traceback is kept for unexpected errors)."""


class KdlibError(Exception):
    """An error whose message is all the user needs (no traceback)."""
