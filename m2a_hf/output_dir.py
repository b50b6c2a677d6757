"""The training output folder: refusing to mix runs, resuming from a checkpoint, and a final save that is atomic.

Layout of `<output_dir>` after `train_m2a`::

    config.json, model.safetensors, *.py, tokenizer files,   the final model: `from_pretrained(output_dir)` works
    attribute_vocab.json, README.md, metrics.json,
    log_history.json, training_curves.png
    checkpoint-<step>/                                        stage-1 Trainer checkpoints (resumable)
    stage2/checkpoint-<step>/                                 stage-2 Trainer checkpoints (resumable)
    stage2/stage1_result.json, stage2/stage1_modules.safetensors
                                                              what a resumed stage 2 needs from stage 1

**Atomic final save.** The Trainer's checkpoints share the folder, so the final model cannot be one directory
renamed into place. It is written complete into a hidden staging folder inside `<output_dir>` (`.m2a-final-*`, same
filesystem) and then published: the old `config.json` (the file that makes a folder a model) is removed first, every
other file is moved in with `os.replace`, and `config.json` is moved in **last**. A run killed at any point leaves
either no `config.json` or a complete model (weights, tokenizer, vocabulary, metrics); a stale staging folder is
removed by the next run. Folders with a PEFT adapter use `adapter_config.json` the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint


logger = logging.getLogger(__name__)

MODEL_MARKERS = ("config.json", "adapter_config.json")
"""Files that make a folder a loadable model: removed first and published last."""
RESULT_FILES = ("metrics.json",)
"""Files of a finished run besides the model."""
STAGING_PREFIX = ".m2a-final-"
STAGE2_DIR = "stage2"
STAGE1_RESULT = "stage1_result.json"
STAGE1_MODULES = "stage1_modules.safetensors"
"""What stage 2's folder keeps from stage 1 (results; the modules stage 2 trains), for a resumed stage 2."""
WEIGHT_PATTERNS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin*", "adapter_model*")
"""Weight files of another save format, removed when a new model is published over an old one."""


def is_truthy_resume(value: object) -> bool:
    """Whether `resume_from_checkpoint` asks for the last checkpoint (`True`, or the CLI's string `"True"`)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir())


def previous_run(output_dir: str | os.PathLike) -> list[Path]:
    """What in `output_dir` belongs to an earlier run: a model, its metrics, Trainer checkpoints."""
    out = Path(output_dir)
    found = [out / name for name in (*MODEL_MARKERS, *RESULT_FILES) if (out / name).is_file()]
    return found + _checkpoints(out) + _checkpoints(out / STAGE2_DIR)


def check_output_dir(output_dir: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> list[Path]:
    """What `previous_run` finds in `output_dir`; changes nothing (the CLI calls it before loading any data).

    Raises:
        FileExistsError: The folder holds a run and neither `overwrite` nor `resume` is set (the folder and what was
            found are named).
    """
    out = Path(output_dir)
    found = previous_run(out)
    if found and not (overwrite or resume):
        shown = ", ".join(p.relative_to(out).as_posix() for p in found[:5]) + (", ..." if len(found) > 5 else "")
        raise FileExistsError(
            f"output_dir {str(out)!r} already holds a training run ({shown}). Pass --overwrite_output_dir to replace "
            "it, --resume_from_checkpoint (a checkpoint folder, or True for the last one) to continue it, or choose "
            "another --output_dir."
        )
    return found


def prepare_output_dir(output_dir: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Make `output_dir` ready for a new run (or a resumed one) and return it.

    A folder that already holds a run (`previous_run`) is refused unless `overwrite` (its model markers, metrics and
    checkpoints are then deleted, so that they cannot mix with the new run's) or `resume` (left as it is). Stale
    staging folders of a killed final save are always removed.

    Raises:
        FileExistsError: The folder holds a run and neither `overwrite` nor `resume` is set (the folder and what was
            found are named).
    """
    out = Path(output_dir)
    found = check_output_dir(out, overwrite=overwrite, resume=resume)
    if found and overwrite and not resume:
        logger.warning("Overwriting the run in %s (--overwrite_output_dir).", out)
        for path in found:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(out / STAGE2_DIR, ignore_errors=True)
    if out.is_dir():
        for stale in out.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolve_resume_checkpoint(resume: object, output_dir: str | os.PathLike) -> tuple[str | None, int]:
    """The checkpoint to resume from and its stage (1, or 2 for `<output_dir>/stage2/checkpoint-*`).

    `True` (or `"True"`) takes the last checkpoint, as the `Trainer` does (`get_last_checkpoint`), looking in
    `<output_dir>/stage2` first, then in `<output_dir>`. A path is a checkpoint folder; it is a stage-2 one when it
    lies in a folder named `stage2`. `None`/`False`/`""` give `(None, 0)`.

    Raises:
        FileNotFoundError: No checkpoint to resume from, or the path is not a Trainer checkpoint.
    """
    if resume is None or resume is False or (isinstance(resume, str) and resume.strip().lower() in ("", "false")):
        return None, 0
    out = Path(output_dir)
    if is_truthy_resume(resume):
        for folder, stage in ((out / STAGE2_DIR, 2), (out, 1)):
            last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
            if last is not None:
                logger.info("Resuming stage %d from the last checkpoint, %s.", stage, last)
                return last, stage
        raise FileNotFoundError(
            f"--resume_from_checkpoint True: no {PREFIX_CHECKPOINT_DIR}-* folder in {str(out / STAGE2_DIR)!r} or "
            f"{str(out)!r}; start without it."
        )
    path = Path(str(resume))
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {str(path)!r} is not a Trainer checkpoint folder (no trainer_state.json)."
        )
    return str(path), 2 if path.resolve().parent.name == STAGE2_DIR else 1


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staging: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Move the complete contents of `staging` into `output_dir`, the model markers (`config.json`) last.

    The markers already in `output_dir` are removed first, and weight files of another format that the new model does
    not have, so a reader never sees an old config beside new weights or a new config beside missing files.
    """
    staging, out = Path(staging), Path(output_dir)
    new = {p.name for p in staging.iterdir()}
    for marker in MODEL_MARKERS:
        (out / marker).unlink(missing_ok=True)
    for pattern in WEIGHT_PATTERNS:
        for old in out.glob(pattern):
            if old.name not in new and old.is_file():
                old.unlink()
    for item in sorted(staging.iterdir()):
        if item.name in MODEL_MARKERS:
            continue
        target = out / item.name
        if item.is_dir() and target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    for marker in MODEL_MARKERS:
        if (staging / marker).is_file():
            _fsync_dir(out)  # everything else is in place before the marker appears
            os.replace(staging / marker, out / marker)
    _fsync_dir(out)


@contextmanager
def staged_final_save(output_dir: str | os.PathLike) -> Iterator[Path]:
    """A staging folder for the final model; published into `output_dir` when the block completes.

    Example:
        >>> with staged_final_save(out) as folder:  # doctest: +SKIP
        ...     save_for_hub(model, folder, tokenizer=tokenizer)
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        yield staging
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = [
    "MODEL_MARKERS",
    "STAGE1_MODULES",
    "STAGE1_RESULT",
    "STAGE2_DIR",
    "STAGING_PREFIX",
    "is_truthy_resume",
    "prepare_output_dir",
    "previous_run",
    "publish",
    "resolve_resume_checkpoint",
    "staged_final_save",
]
