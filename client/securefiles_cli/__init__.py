"""The securefiles command-line client: a thin layer over the portal's HTTP API
(/api/v1/) and its tus endpoint (/files/uploads/)."""

__version__ = "1.0.0"
