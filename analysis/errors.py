"""The one exception analysis raises for bad input (a missing or unusable run dir)."""


class AnalysisError(ValueError):
    """A run dir cannot be analysed; the one-line message names the path and what to do."""
