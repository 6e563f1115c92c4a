"""Dask scheduler addresses: what is wrong with one, in words (for a parameter file's ``cluster`` and
``--scheduler``)."""

from __future__ import annotations

__all__ = ["SCHEDULER_PROTOCOLS", "scheduler_address_problem"]

SCHEDULER_PROTOCOLS = ("tcp", "tls")


def scheduler_address_problem(address: object) -> str | None:
    """What is wrong with a Dask scheduler address (``None`` when it is ``tcp://HOST:PORT`` or ``tls://HOST:PORT``,
    the port in 1..65535, an IPv6 host in brackets): ``no port``, ``no host``, ``no protocol``..."""
    from urllib.parse import urlsplit

    if not isinstance(address, str):
        return f"{type(address).__name__}, not text"
    scheme, _, rest = address.partition("://")
    if not rest and not address.endswith("://"):
        return "no protocol"
    if scheme not in SCHEDULER_PROTOCOLS:
        return f"the protocol {scheme!r}, not {' or '.join(SCHEDULER_PROTOCOLS)}"
    try:
        parts = urlsplit(address)
    except ValueError:  # e.g. an IPv6 host without its closing bracket
        return "not a valid address (an IPv6 host goes in brackets: tcp://[::1]:8786)"
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return "more than HOST:PORT after the protocol"
    if not parts.hostname:
        return "no host"
    try:
        port = parts.port
    except ValueError:
        return "a port outside 1..65535"
    if port is None or port == 0:
        return "no port" if port is None else "port 0"
    return None
