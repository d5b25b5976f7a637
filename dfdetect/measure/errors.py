"""The error of every attack module for input it cannot use (the lowest floor of ``attack/``)."""


class AttackDataError(ValueError):
    """Input that cannot be scored; the message names the file, row, key or provider."""
