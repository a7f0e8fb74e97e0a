"""The Hugging Face Hub, asked once and briefly: is a repository there, gated, reachable, or in the local cache.

`probe` makes one request for the repository's info (`HfApi.dataset_info` / `model_info`, a short timeout, no
retry) and, for a gated repository, one to its auth-check endpoint (`HfApi.auth_check`), and reads the local
caches: a dataset is *cached* when `datasets` has prepared it before (the folder `datasets` itself reads in
offline mode, under `HF_DATASETS_CACHE`), a model when its snapshot is in the hub cache (`HF_HUB_CACHE`).
`HF_HUB_OFFLINE=1` is respected: no request is made, and only the caches count.

`HubError` is one line naming the set or model, the repository and what to do. Stage 01 probes every hub set
before `datasets.load_dataset` reads it (`kdlib.corpus.preparation.load_raw`): `load_dataset` alone, with no
network, retries the first file five times with back-off (about 25 s) and then raises a long traceback; a set
that cannot be reached but is cached is read from the cache without asking the network again (`offline`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from kdlib.config.errors import KdlibError

PROBE_TIMEOUT_S = 10.0
Kind = Literal["dataset", "model"]
Status = Literal["reachable", "gated", "missing", "no_revision", "unreachable", "offline", "error"]


class HubError(KdlibError, OSError):
    """A hub repository that cannot be read now: one line naming it and what to do."""


@dataclass(frozen=True)
class HubState:
    """What the hub and the local caches say about one repository."""

    repo_id: str
    kind: Kind
    status: Status
    cached: bool
    detail: str = ""  # the error's class and message, or the gating mode of a reachable gated repository
    files: tuple[str, ...] = ()  # the repository's files at the revision, when reachable
    card: dict = field(default_factory=dict)  # its card's metadata, when reachable

    @property
    def page(self) -> str:
        return f"{constants.ENDPOINT}/{'datasets/' if self.kind == 'dataset' else ''}{self.repo_id}"

    def advice(self, streaming: bool = False) -> str | None:
        """What is wrong and what to do, in a few words; None when it can be read (reachable, or cached and not
        streamed: a streamed set is read from the hub every time)."""
        if self.status == "reachable" or (self.status in ("unreachable", "offline") and self.cached and not streaming):
            return None
        if self.status == "gated":
            return (
                f"gated: accept its conditions on {self.page} with your account, then log in here "
                "(`hf auth login`, or set HF_TOKEN)"
            )
        if self.status == "missing":
            return (
                f"not on the hub ({self.detail}): check the id; if it is private, log in with an account that "
                "can see it (`hf auth login`)"
            )
        if self.status == "no_revision":
            return f"the hub has no such revision ({self.detail})"
        if self.status == "error":
            return f"the hub answered with an error ({self.detail}): try again later"
        where = "streamed from the hub while stage 01 runs" if streaming else "not in the Hugging Face cache"
        if self.status == "offline":
            return f"HF_HUB_OFFLINE is set and it is {where}: unset HF_HUB_OFFLINE on a machine with network"
        return (
            f"the Hugging Face Hub cannot be reached ({self.detail}) and it is {where}: check the network, "
            "or fill the cache on a machine that has one and set HF_HUB_OFFLINE=1"
        )


def offline_mode() -> bool:
    """Whether `HF_HUB_OFFLINE` is set (read by huggingface_hub when it is imported; what it obeys per request)."""
    return constants.is_offline_mode()


def dataset_cached(repo_id: str) -> bool:
    """Whether `datasets` has prepared this hub dataset before: what it reads from in offline mode."""
    from datasets import config

    root = Path(os.path.expanduser(str(config.HF_DATASETS_CACHE))) / "___".join(repo_id.split("/"))
    return any(os.path.isdir(path) for path in glob.glob(str(root / "*" / "*" / "*")))


def model_cached(repo_id: str) -> bool:
    """Whether a snapshot of this hub model, with its config.json, is in the hub cache."""
    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return any(folder.glob("*/config.json"))


def probe(repo_id: str, kind: Kind, revision: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> HubState:
    """Ask the hub about one repository, once, without retrying (see the module docstring)."""
    cached = dataset_cached(repo_id) if kind == "dataset" else model_cached(repo_id)
    if offline_mode():
        return HubState(repo_id, kind, "offline", cached)
    api = HfApi()
    try:
        info = (api.dataset_info if kind == "dataset" else api.model_info)(repo_id, revision=revision, timeout=timeout)
        if info.gated:  # the info of a gated repository is public; its files need the user's access
            api.auth_check(repo_id, repo_type=kind)
    except GatedRepoError as error:
        return HubState(repo_id, kind, "gated", cached, _short(error))
    except RevisionNotFoundError as error:
        return HubState(repo_id, kind, "no_revision", cached, f"revision {revision!r}: {_short(error)}")
    except (RepositoryNotFoundError, DisabledRepoError) as error:
        return HubState(repo_id, kind, "missing", cached, _short(error))
    except OfflineModeIsEnabled as error:
        return HubState(repo_id, kind, "offline", cached, _short(error))
    except HfHubHTTPError as error:
        return HubState(repo_id, kind, "error", cached, _short(error))
    except Exception as error:  # any transport error (DNS, refused, timeout, proxy): unreachable
        return HubState(repo_id, kind, "unreachable", cached, _short(error))
    files = tuple(sibling.rfilename for sibling in info.siblings or ())
    card = info.card_data.to_dict() if info.card_data is not None else {}
    return HubState(repo_id, kind, "reachable", cached, str(info.gated or ""), files, card)


def split_examples(card: dict, config: str | None, split: str) -> int | None:
    """The number of examples of `split` (of `config`, else of the only or default configuration) that a
    dataset card's `dataset_info` states; None when it states none."""
    infos = card.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else infos if isinstance(infos, list) else []
    if config is not None:
        infos = [info for info in infos if isinstance(info, dict) and info.get("config_name") == config]
    elif len(infos) > 1:
        infos = [info for info in infos if isinstance(info, dict) and info.get("config_name") in (None, "default")]
    for info in infos[:1]:
        for entry in info.get("splits") or [] if isinstance(info, dict) else []:
            if isinstance(entry, dict) and entry.get("name") == split and isinstance(entry.get("num_examples"), int):
                return entry["num_examples"]
    return None


@contextmanager
def offline() -> Iterator[None]:
    """huggingface_hub and datasets in offline mode for the block (as with HF_HUB_OFFLINE=1): read from the caches,
    no request, no retry."""
    from datasets import config

    saved = constants.HF_HUB_OFFLINE, config.HF_HUB_OFFLINE, getattr(config, "HF_DATASETS_OFFLINE", None)
    constants.HF_HUB_OFFLINE = config.HF_HUB_OFFLINE = True
    if saved[2] is not None:
        config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, config.HF_HUB_OFFLINE = saved[:2]
        if saved[2] is not None:
            config.HF_DATASETS_OFFLINE = saved[2]


def _short(error: BaseException) -> str:
    """An error as `Class: first line`, at most 160 characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
