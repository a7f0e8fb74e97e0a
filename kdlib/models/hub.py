"""Publishing a trained model on the Hugging Face Hub: its folder as it is (safetensors weights, configs,
processor and its card, `README.md`), with `huggingface_hub.HfApi.upload_folder`.

    kdlib push-to-hub runs/tiny/students/DW-2-2-lambda80-<key>/model you/dw-2-2-arabic --dry-run

Only a whole checkpoint with a card is pushed, and never a pickled file (`*.bin`, `*.pt`, …): the files that
would go are those `upload_files` lists (the same patterns `upload_folder` is given). Credentials are
huggingface_hub's own (`HF_TOKEN`, or `hf auth login`); kdlib stores none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlib.models.cards import CARD
from kdlib.storage.whole import whole_checkpoint

IGNORED = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.lock", ".*", "*/.*", "*.tmp*")


@dataclass(frozen=True)
class Upload:
    """What a push sends: the repository, the folder's files (relative paths) and their total size."""

    repo_id: str
    folder: Path
    files: tuple[str, ...]
    size_bytes: int

    def describe(self) -> str:
        """The upload in words, one file a line (what `--dry-run` prints)."""
        lines = [f"would upload {len(self.files)} files ({self.size_bytes / 1e6:,.1f} MB) to {self.repo_id}:"]
        lines += [f"  {name}  ({(self.folder / name).stat().st_size:,} bytes)" for name in self.files]
        return "\n".join(lines)


def upload_files(folder: str | Path) -> list[str]:
    """The files of `folder` a push uploads (relative, sorted): everything but pickles, locks and hidden files."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    names = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    return list(filter_repo_objects(names, ignore_patterns=list(IGNORED)))


def plan_upload(folder: str | Path, repo_id: str) -> Upload:
    """Check that `folder` is a whole checkpoint with its card and name what a push of it to `repo_id` sends;
    a ValueError says what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such model folder")
    if not whole_checkpoint(folder):
        raise ValueError(
            f"{folder}: not a whole checkpoint (configs, processor and model.safetensors): push a trained model's "
            "folder, e.g. runs/<profile>/students/<run>/model"
        )
    if not (folder / CARD).is_file():
        raise ValueError(f"{folder}: no model card ({CARD}); stage 03 writes one beside every trained student")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repository id {repo_id!r}: expected OWNER/NAME, e.g. you/dw-16-16-arabic")
    files = tuple(upload_files(folder))
    return Upload(repo_id, folder, files, sum((folder / name).stat().st_size for name in files))


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
    api: Any = None,
) -> str:
    """Create `repo_id` if needed (a model repository, `private` as asked; the branch `revision` too) and upload the
    folder's files (`upload_files`) in one commit; the commit's URL. `api` stands in for `huggingface_hub.HfApi()` in tests."""
    upload = plan_upload(folder, repo_id)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None:  # a branch of its own (e.g. one per λ), made from main if missing
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(upload.folder),
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        commit_message=message or f"Upload {upload.folder.parent.name} with kdlib",
        ignore_patterns=list(IGNORED),
    )
    return str(getattr(commit, "commit_url", commit))
