"""Weights & Biases without an account: offline mode instead of a login prompt or a crash."""

from __future__ import annotations

import netrc
import os
import sys
from urllib.parse import urlparse

from ..utils.logging import get_logger

logger = get_logger(__name__)

_QUIET_MODES = ("offline", "disabled", "dryrun")


def reports_to_wandb(report_to: str | list[str] | None) -> bool:
    """Whether a Trainer `report_to` value includes W&B (`"wandb"` or `"all"`)."""
    if report_to is None:
        return False
    targets = [report_to] if isinstance(report_to, str) else list(report_to)
    return "wandb" in targets or "all" in targets


def _has_netrc_key() -> bool:
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def prepare_wandb(report_to: str | list[str] | None, *, announce: bool = True) -> str | None:
    """Make `report_to: wandb` work on a machine with no W&B account or network.

    With no API key (`WANDB_API_KEY`, an identity token file, or a `~/.netrc` entry for the W&B host) and no
    `WANDB_MODE` set, sets `WANDB_MODE=offline` and says so in one line: runs are written under `./wandb` and can be
    uploaded later with `wandb sync`. An explicit `WANDB_MODE` is respected.

    Args:
        report_to (`str` or `list[str]`): The Trainer's `report_to`.
        announce (`bool`, *optional*, defaults to `True`): Log the one-line notice (main process only).

    Returns:
        The W&B mode in effect (`"online"`, `"offline"`, ...), or `None` when not reporting to W&B.
    """
    if not reports_to_wandb(report_to):
        return None
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or _has_netrc_key():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    if announce:
        logger.warning("W&B: no API key found, logging offline to ./wandb (upload later with `wandb sync`).")
    return "offline"


def finish_wandb() -> None:
    """Finish the active W&B run, if any: the Trainer leaves it open, and an open offline run loses its last data."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
