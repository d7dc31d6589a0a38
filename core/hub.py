"""Is a model hub usable right now? Asked before any download is tried.

Plugins accept hub ids (``hf-hub:...``, a torchaudio bundle name) only when
online. Asking first gives an offline machine its answer at once, with a
message saying to pass local weights, instead of minutes of retries.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_offline() -> bool:
    """True when the user said so (``HF_HUB_OFFLINE=1``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub (``HF_ENDPOINT`` or huggingface.co,
    or ``url``) be opened within ``timeout`` seconds?"""
    parsed = urlparse(url or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)),
                                 timeout=timeout).close()
    except OSError:
        return False
    return True
